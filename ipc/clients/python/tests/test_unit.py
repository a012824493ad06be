"""Tests that need no agent: socket path rules, the header logic, and
McpkeyAuth's DPoP and 401 handling against a fake agent (it answers
token.get per the wire contract and records what it was asked; the real
agent's DPoP is tested in test_agent.py) and a real http.server resource
server on loopback."""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import mcpkey

try:
    import httpx
except ImportError:  # the httpx tests skip (or fail under MCPKEY_E2E_REQUIRE=1)
    httpx = None

REQUIRED = os.environ.get("MCPKEY_E2E_REQUIRE") == "1"


def need_httpx(test):
    if httpx is None and not REQUIRED:
        return unittest.skip("httpx missing (apt-get install python3-httpx)")(test)
    return test


class SocketPathTest(unittest.TestCase):
    def test_rules(self):
        uid = os.getuid()
        self.assertEqual(mcpkey.default_socket_path({"MCPKEY_SOCK": "/x/a.sock", "XDG_RUNTIME_DIR": "/r"}), "/x/a.sock")
        self.assertEqual(mcpkey.default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1234"}), "/run/user/1234/mcpkey/agent.sock")
        try:
            st = os.lstat("/run/user/%d" % uid)
            run_ours = os.path.isdir("/run/user/%d" % uid) and st.st_uid == uid and st.st_mode & 0o077 == 0
        except OSError:
            run_ours = False
        want = "/run/user/%d/mcpkey/agent.sock" % uid if run_ours else "/var/tmp/x/mcpkey-%d/agent.sock" % uid
        self.assertEqual(mcpkey.default_socket_path({"TMPDIR": "/var/tmp/x"}), want)
        if not run_ours:
            self.assertEqual(mcpkey.default_socket_path({}), "/tmp/mcpkey-%d/agent.sock" % uid)

    def test_no_agent(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(mcpkey.McpkeyError) as cm:
                mcpkey.Client(path=os.path.join(d, "none.sock")).get_token("https://m.example/mcp")
            self.assertEqual(cm.exception.code, "no_agent")
            self.assertIn("none.sock", str(cm.exception))


    @unittest.skipUnless(os.getuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_foreign_socket(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        os.chmod(d, 0o777)
        path = os.path.join(d, "agent.sock")
        listener = ("import socket, sys, time\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen()\n"
                    "print('ready', flush=True)\nc, _ = s.accept()\nprint(c.recv(100), flush=True)\n")
        p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", listener, path],
                             stdout=subprocess.PIPE)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        with self.assertRaises(mcpkey.McpkeyError) as cm:
            mcpkey.Client(path=path).hello()
        self.assertEqual(cm.exception.code, "foreign_socket")
        self.assertEqual(p.stdout.readline(), b"b''\n")  # nothing was sent


class FakeAgent:
    """Answers each request with reply(msg) on a Unix socket; records them."""

    def __init__(self, test, reply):
        self.dir = tempfile.TemporaryDirectory()
        test.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "agent.sock")
        self.seen = []
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen()
        test.addCleanup(self.srv.close)

        def serve():
            while True:
                try:
                    c, _ = self.srv.accept()
                except OSError:
                    return
                with c, c.makefile("rb") as f:
                    msg = json.loads(f.readline())
                    self.seen.append(msg)
                    c.sendall(json.dumps(dict({"jsonrpc": "2.0", "id": msg["id"]}, **reply(msg))).encode() + b"\n")

        threading.Thread(target=serve, daemon=True).start()


class ResourceServer:
    """A loopback HTTP server: handler(request_number, headers) -> (status, headers)."""

    def __init__(self, test, handler):
        self.seen = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_any(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.seen.append((self.command, dict(self.headers), body))
                status, headers = handler(len(outer.seen), self.headers)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_any

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        test.addCleanup(self.httpd.server_close)
        test.addCleanup(self.httpd.shutdown)
        self.url = "http://127.0.0.1:%d/mcp" % self.httpd.server_address[1]


@need_httpx
class AuthTest(unittest.TestCase):
    def test_headers(self):
        from mcpkey._httpx import auth_headers, dpop_nonce_challenge
        self.assertEqual(auth_headers({"access_token": "at", "token_type": "Bearer"}), {"Authorization": "Bearer at"})
        self.assertEqual(auth_headers({"access_token": "at", "token_type": "DPoP", "dpop_proof": "p"}),
                         {"Authorization": "DPoP at", "DPoP": "p"})
        with self.assertRaises(mcpkey.McpkeyError) as cm:
            auth_headers({"access_token": "at", "token_type": "DPoP", "server": "s"})
        self.assertEqual(cm.exception.code, "internal")
        r = lambda h: httpx.Response(401, headers=h)
        self.assertEqual(dpop_nonce_challenge(r({"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n"})), "n")
        self.assertIsNone(dpop_nonce_challenge(r({"WWW-Authenticate": 'DPoP error="use_dpop_nonce"'})))
        self.assertIsNone(dpop_nonce_challenge(r({"WWW-Authenticate": 'Bearer error="use_dpop_nonce"', "DPoP-Nonce": "n"})))
        self.assertIsNone(dpop_nonce_challenge(r({"WWW-Authenticate": 'DPoP error="invalid_token"', "DPoP-Nonce": "n"})))

    def test_dpop_nonce_retry(self):
        rs = ResourceServer(self, lambda n, h: (401, {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n1"})
                            if n == 1 else (200, {}))
        count = [0]

        def reply(msg):
            count[0] += 1
            return {"result": {"access_token": "at", "token_type": "DPoP", "dpop_proof": "proof-%d" % count[0],
                               "server": rs.url, "account": "", "scopes": [], "expires_at": "0001-01-01T00:00:00Z"}}

        agent = FakeAgent(self, reply)
        auth = mcpkey.McpkeyAuth(rs.url, client=mcpkey.Client(path=agent.path))
        with httpx.Client(auth=auth) as c:
            resp = c.post(rs.url + "?q=1", content=b'{"jsonrpc":"2.0"}')
        self.assertEqual(resp.status_code, 200)
        self.assertEqual([m["params"] for m in agent.seen], [
            {"server": rs.url, "dpop_method": "POST", "dpop_url": rs.url},
            {"server": rs.url, "dpop_method": "POST", "dpop_url": rs.url, "dpop_nonce": "n1"},
        ])
        self.assertEqual([(h.get("Authorization"), h.get("DPoP"), b) for _, h, b in rs.seen],
                         [("DPoP at", "proof-1", b'{"jsonrpc":"2.0"}'), ("DPoP at", "proof-2", b'{"jsonrpc":"2.0"}')])

    def test_dpop_nonce_of_a_200_goes_with_the_next_token_request(self):
        # RFC 9449 §9: a server may send a new nonce on any response.
        rs = ResourceServer(self, lambda n, h: (200, {"DPoP-Nonce": "n%d" % n} if n < 3 else {}))

        def reply(msg):
            return {"result": {"access_token": "at", "token_type": "DPoP", "dpop_proof": "p",
                               "server": rs.url, "account": "", "scopes": [], "expires_at": "0001-01-01T00:00:00Z"}}

        agent = FakeAgent(self, reply)
        with httpx.Client(auth=mcpkey.McpkeyAuth(rs.url, client=mcpkey.Client(path=agent.path))) as c:
            for _ in range(4):
                self.assertEqual(c.get(rs.url).status_code, 200)
        self.assertEqual([m["params"].get("dpop_nonce") for m in agent.seen], [None, "n1", "n2", None])

    def test_bearer_401_reports_once(self):
        rs = ResourceServer(self, lambda n, h: (200, {}) if h.get("Authorization") == "Bearer new" else (401, {}))
        agent = FakeAgent(self, lambda m: {"result": {"access_token": "new" if m["params"].get("rejected_token") else "old",
                                                      "token_type": "Bearer", "server": rs.url}})
        with httpx.Client(auth=mcpkey.McpkeyAuth(rs.url, client=mcpkey.Client(path=agent.path))) as c:
            self.assertEqual(c.get(rs.url).status_code, 200)
        self.assertEqual([h.get("Authorization") for _, h, _ in rs.seen], ["Bearer old", "Bearer new"])
        self.assertEqual([m["params"].get("rejected_token") for m in agent.seen], [None, "old"])
        self.assertTrue(all("DPoP" not in h for _, h, _ in rs.seen))

    def test_other_origin_refused_before_asking(self):
        agent = FakeAgent(self, lambda m: {"result": {}})
        with httpx.Client(auth=mcpkey.McpkeyAuth("https://m.example/mcp", client=mcpkey.Client(path=agent.path))) as c:
            with self.assertRaises(mcpkey.McpkeyError) as cm:
                c.get("https://evil.example/mcp")
        self.assertEqual(cm.exception.code, "other_origin")
        self.assertEqual(agent.seen, [])

    def test_needs_login_without_login(self):
        agent = FakeAgent(self, lambda m: {"error": {"code": -32002, "message": "login needed",
                                                     "data": {"code": "needs_login", "scopes": ["a"]}}})
        auth = mcpkey.McpkeyAuth("https://m.example/mcp", client=mcpkey.Client(path=agent.path), login=False)
        with httpx.Client(auth=auth) as c:
            with self.assertRaises(mcpkey.McpkeyError) as cm:
                c.get("https://m.example/mcp")
        self.assertEqual((cm.exception.code, cm.exception.data["scopes"]), ("needs_login", ["a"]))

    def test_step_up(self):
        challenge = {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="mcp:tools mcp:admin"'}
        rs = ResourceServer(self, lambda n, h: (200, {}) if h.get("Authorization") == "Bearer wide" else (403, challenge))
        state = {"signed_in": False}

        def reply(msg):
            if msg["method"] == "session.login":
                state["signed_in"] = True
                return {"result": {"server": rs.url}}
            wide = state["signed_in"]
            return {"result": {"access_token": "wide" if wide else "narrow", "token_type": "Bearer", "server": rs.url,
                               "scopes": ["mcp:tools", "mcp:admin"] if wide else ["mcp:tools", "openid"]}}
        agent = FakeAgent(self, reply)
        auth = mcpkey.McpkeyAuth(rs.url, scopes=["mcp:tools"], client=mcpkey.Client(path=agent.path))
        with httpx.Client(auth=auth) as c:
            self.assertEqual(c.get(rs.url).status_code, 200)
        self.assertEqual([m["params"]["scopes"] for m in agent.seen if m["method"] == "session.login"],
                         [["mcp:tools", "openid", "mcp:admin"]])
        self.assertEqual(agent.seen[-1]["params"]["scopes"], ["mcp:tools", "openid", "mcp:admin"])
        # A 403 for scopes the token holds is answered as it is: no sign-in.
        rs2 = ResourceServer(self, lambda n, h: (403, {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="mcp:tools"'}))
        agent2 = FakeAgent(self, lambda m: {"result": {"access_token": "a", "token_type": "Bearer", "server": rs2.url,
                                                       "scopes": ["mcp:tools"]}})
        with httpx.Client(auth=mcpkey.McpkeyAuth(rs2.url, client=mcpkey.Client(path=agent2.path))) as c:
            self.assertEqual(c.get(rs2.url).status_code, 403)
        self.assertEqual([m for m in agent2.seen if m["method"] == "session.login"], [])


if __name__ == "__main__":
    unittest.main()
