"""Client of the mcpkey agent, the ssh-agent for MCP OAuth.

The agent signs in, keeps the sessions in the OS keyring, refreshes, and
hands access tokens to local programs over a Unix socket; this module speaks
that socket (JSON-RPC 2.0, one message per line; the protocol is ipc/doc.go in
the mcpkey repository) with the standard library only:

    import mcpkey
    token = mcpkey.get_token("https://mcp.example.com/mcp")["access_token"]

McpkeyAuth (an httpx.Auth, imported from httpx only when used) adds the
agent's token to every request of an httpx client, such as the official MCP
Python SDK's HTTP transports (auth=McpkeyAuth(url)).
"""

import fcntl
import hashlib
import json
import os
import pwd
import socket
import stat
import struct
import sys

__all__ = ["Client", "McpkeyError", "McpkeyAuth", "get_token", "sessions", "default_socket_path",
           "agent_lock_path", "running_agent_socket"]

PROTOCOL_VERSION = 1

# Errors from the agent have a stable code in error.data.code.
_MAX_LINE = 16 << 20


class McpkeyError(Exception):
    """An error from the agent or from reaching it.

    Branch on code, never on the message: the agent's codes (not_found,
    needs_login, locked, denied, store_unavailable, invalid_request,
    token_rejected, dpop_required, cancelled, internal, method_not_found) and
    this client's own: no_agent, connection_lost, foreign_socket,
    other_origin. data is the error's data (for needs_login: server, account,
    scopes, reason).
    """

    def __init__(self, code, message, rpc_code=None, data=None):
        super().__init__(message)
        self.code = code
        self.rpc_code = rpc_code
        self.data = data or {}


def _own_private_dir(path):
    """Whether path is a directory (not a link to one) of ours, closed to others."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def _darwin_socket_path(home):
    p = os.path.join(home, "Library", "Caches", "mcpkey", "agent.sock")
    if not home or len(p.encode()) >= 104:  # sizeof(sun_path) on macOS
        return "/tmp/mcpkey-%d/agent.sock" % os.getuid()
    return p


def default_socket_path(environ=None):
    """The agent's socket, by the Go client's rules (ipc.DefaultSocketPath).

    $MCPKEY_SOCK, else $XDG_RUNTIME_DIR/mcpkey/agent.sock; without
    XDG_RUNTIME_DIR (MCP hosts strip it) /run/user/UID/mcpkey/agent.sock when
    that directory is ours and private, else $TMPDIR/mcpkey-UID/agent.sock
    (/tmp without TMPDIR). macOS: ~/Library/Caches/mcpkey/agent.sock.
    """
    env = os.environ if environ is None else environ
    if env.get("MCPKEY_SOCK"):
        return env["MCPKEY_SOCK"]
    if sys.platform == "darwin":
        return _darwin_socket_path(env.get("HOME", ""))
    uid = os.getuid()
    run = env.get("XDG_RUNTIME_DIR", "")
    if not run and _own_private_dir("/run/user/%d" % uid):
        run = "/run/user/%d" % uid
    if run:
        return os.path.join(run, "mcpkey", "agent.sock")
    return os.path.join(env.get("TMPDIR") or "/tmp", "mcpkey-%d" % uid, "agent.sock")


def agent_lock_path(environ=None):
    """The per-user agent lock: agent.lock, or agent-<hash of HOME>.lock when
    HOME is not the account's home, in /run/user/UID/mcpkey/ (else
    /tmp/mcpkey-UID/; macOS next to the default socket)."""
    env = os.environ if environ is None else environ
    home = env.get("HOME", "")
    name = "agent.lock"
    try:
        account = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        account = ""
    if home and account and os.path.normpath(account) != os.path.normpath(home):
        name = "agent-%s.lock" % hashlib.sha256(os.path.normpath(home).encode()).hexdigest()[:12]
    uid = os.getuid()
    if sys.platform == "darwin":
        d = os.path.dirname(_darwin_socket_path(home))
    elif _own_private_dir("/run/user/%d" % uid):
        d = "/run/user/%d/mcpkey" % uid
    else:
        d = "/tmp/mcpkey-%d" % uid
    return os.path.join(d, name)


def running_agent_socket(environ=None):
    """The socket recorded by the agent holding the per-user lock, or None.

    The file is read only if it is a private file of ours (not through a
    link), and believed only while a process holds its lock."""
    try:
        fd = os.open(agent_lock_path(environ), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: an agent runs
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        rec = json.loads(os.read(fd, 4096) or b"{}")
        sock = rec.get("socket") if isinstance(rec, dict) else None
        return sock if isinstance(sock, str) and sock else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _dial(path, timeout):
    if path.startswith(("ws://", "wss://")):
        raise McpkeyError("invalid_request", "mcpkey: %s: this client speaks the agent's Unix socket, not its "
                          "WebSocket; unset MCPKEY_SOCK or point it at the socket" % path.split("#")[0])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        s.close()
        raise McpkeyError("no_agent", "mcpkey: no agent running on %s\nhint: start one with: mcpkey agent" % path) from e
    except OSError as e:
        s.close()
        raise McpkeyError("connection_lost", "mcpkey: connect to agent on %s: %s" % (path, e.strerror or e)) from e
    if hasattr(socket, "SO_PEERCRED"):
        _pid, uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    else:  # macOS has LOCAL_PEERCRED, which Python does not expose: the socket file's owner instead
        uid = os.stat(path).st_uid
    if uid != os.getuid():
        s.close()
        raise McpkeyError("foreign_socket", "mcpkey: connect to agent on %s: socket is served by uid %d, not %d; "
                          "refusing it" % (path, uid, os.getuid()))
    return s


def _agent_error(err):
    data = err.get("data") if isinstance(err.get("data"), dict) else {}
    code = data.get("code") or ("method_not_found" if err.get("code") == -32601 else "internal")
    return McpkeyError(code, "mcpkey: %s" % (err.get("message") or code), err.get("code"), data)


def _params(server, **optional):
    """A method's params: server, and the optional ones that are set."""
    p = {"server": server}
    p.update((k, v) for k, v in optional.items() if v)
    return p


def _caller_env():
    env = {}
    browser = os.environ.get("BROWSER")
    if browser:
        env["BROWSER"] = os.pathsep.join(os.path.abspath(p) if os.sep in p and not os.path.isabs(p) else p
                                         for p in browser.split(os.pathsep))
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    return env


class Client:
    """A client of the mcpkey agent: one connection per call, so it is safe
    to share between threads and never holds a socket while idle.

    path: the agent's socket (default: $MCPKEY_SOCK, the default path, then
    the agent lock's record). timeout: seconds a call may take (None: no
    limit; token.get may wait for an approval, session.login for the user).
    """

    def __init__(self, path=None, timeout=None, environ=None):
        self.path = path
        self.timeout = timeout
        self.environ = environ

    def _connect(self):
        env = os.environ if self.environ is None else self.environ
        path = self.path or default_socket_path(env)
        try:
            return _dial(path, self.timeout)
        except McpkeyError as e:
            # The default socket has no agent, but the user's agent may
            # listen elsewhere (another XDG_RUNTIME_DIR, --socket): its lock
            # says where.
            running = None
            if e.code == "no_agent" and not self.path and not env.get("MCPKEY_SOCK"):
                running = running_agent_socket(env)
            if not running or running == path:
                raise
            return _dial(running, self.timeout)

    def call(self, method, params=None, on_progress=None):
        """Calls one method of the protocol (ipc/doc.go) and returns its result.
        on_progress receives session.login's login.progress events."""
        msg = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            msg["params"] = params
        with self._connect() as s:
            try:
                s.sendall(json.dumps(msg).encode() + b"\n")
                f = s.makefile("rb")
                while True:
                    line = f.readline(_MAX_LINE)
                    if not line.endswith(b"\n"):
                        raise McpkeyError("connection_lost", "mcpkey: connection to agent lost")
                    if not line.strip():
                        continue
                    reply = json.loads(line)
                    if reply.get("method") == "login.progress":
                        if on_progress:
                            on_progress(reply.get("params", {}).get("event", {}))
                        continue
                    if reply.get("id") != 1:
                        continue
                    if reply.get("error"):
                        raise _agent_error(reply["error"])
                    return reply.get("result")
            except (OSError, ValueError) as e:
                raise McpkeyError("connection_lost", "mcpkey: connection to agent lost: %s" % e) from e

    def hello(self):
        """agent.hello: the agent's version and capabilities (the methods it serves)."""
        return self.call("agent.hello", {"client": "mcpkey-python", "protocol_version": PROTOCOL_VERSION})

    def get_token(self, server, scopes=None, min_ttl=None, account=None, rejected_token=None,
                  dpop_method=None, dpop_url=None, dpop_nonce=None):
        """token.get: an access token for server (a configured name or URL).

        Returns the result as on the wire: access_token, token_type,
        expires_at (RFC 3339), scopes, server, account (and dpop_proof for
        a key-bound session). min_ttl is in seconds."""
        p = _params(server, account=account, scopes=scopes and list(scopes),
                    min_ttl_seconds=min_ttl and int(-(-min_ttl // 1)), rejected_token=rejected_token,
                    dpop_method=dpop_method, dpop_url=dpop_url, dpop_nonce=dpop_nonce)
        return self.call("token.get", p)

    def sessions(self):
        """sessions.list: the agent's sessions, without secrets."""
        return self.call("sessions.list").get("sessions") or []

    def login(self, server, scopes=None, account=None, no_browser=False, on_progress=None):
        """session.login: the agent signs in (or joins the login running for
        the same session: one browser tab), in this process's $BROWSER."""
        p = _params(server, account=account, scopes=scopes and list(scopes), no_browser=no_browser,
                    env=None if no_browser else _caller_env())
        return self.call("session.login", p, on_progress)


_default = Client()


def get_token(server, scopes=None, min_ttl=None):
    """An access token (token.get's result, a dict) for server from the agent."""
    return _default.get_token(server, scopes=scopes, min_ttl=min_ttl)


def sessions():
    """The agent's sessions (dicts), without secrets."""
    return _default.sessions()


def __getattr__(name):
    if name == "McpkeyAuth":  # imports httpx only when asked for
        from ._httpx import McpkeyAuth
        return McpkeyAuth
    raise AttributeError("module 'mcpkey' has no attribute %r" % name)
