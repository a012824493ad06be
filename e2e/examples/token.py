"""Fetch an access token from the mcpkey agent using only the standard library.

Usage: python3 token.py <server-url-or-name>
"""
import json, os, socket, sys

path = os.environ.get("MCPKEY_SOCK") or os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), "mcpkey", "agent.sock")
request = {"jsonrpc": "2.0", "id": 1, "method": "token.get", "params": {"server": sys.argv[1]}}
try:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(s.makefile("rb").readline())
except OSError as e:
    sys.exit(f"mcpkey: {e}")
if "error" in reply:
    sys.exit(f"mcpkey: {reply['error']['message']}")
print(reply["result"]["access_token"])
