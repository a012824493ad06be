"""Tests against a real agent, the e2e authorization server and the go-sdk
resource server, which e2e/clients_test.go starts, signs in to and describes
in the environment (MCPKEY_SOCK, MCPKEY_TEST_SERVER, MCPKEY_TEST_AS,
MCPKEY_TEST_AGENT_HOME). Without them the tests skip, or fail under
MCPKEY_E2E_REQUIRE=1. They share one agent and run in order."""

import asyncio
import json
import os
import tempfile
import threading
import unittest
import urllib.request

import mcpkey

SERVER = os.environ.get("MCPKEY_TEST_SERVER")
ISSUER = os.environ.get("MCPKEY_TEST_AS")
if not SERVER and os.environ.get("MCPKEY_E2E_REQUIRE") == "1":
    raise RuntimeError("MCPKEY_TEST_SERVER is not set (MCPKEY_E2E_REQUIRE=1): run through e2e/clients_test.go")

try:
    import httpx
except ImportError:
    httpx = None

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def stats(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def as_stats():
    return stats(ISSUER + "/_test/stats")


def rs_stats():
    return stats(SERVER.rsplit("/mcp", 1)[0] + "/_test/stats")


def tamper_first(n):
    """An httpx request hook that spoils the token of the first n requests:
    a fault at the network edge, so the real server answers 401."""
    left = [n]

    def hook(request):
        if left[0] > 0 and "Authorization" in request.headers:
            left[0] -= 1
            request.headers["Authorization"] += "x"
    return hook


@unittest.skipUnless(SERVER, "no agent fixture: run ./e2e/test.sh -run TestPythonClient")
class AgentTest(unittest.TestCase):
    def test_1_get_token_and_sessions(self):
        hello = mcpkey.Client().hello()
        self.assertEqual(hello["protocol_version"], 1)
        self.assertIn("token.get", hello["capabilities"])
        tok = mcpkey.get_token(SERVER, scopes=["mcp:tools"], min_ttl=30)
        self.assertEqual(tok["server"], SERVER)
        self.assertEqual(tok["token_type"].lower(), "bearer")
        self.assertEqual(len(tok["access_token"].split(".")), 3)
        self.assertNotIn("refresh_token", tok)
        ss = mcpkey.sessions()
        self.assertEqual([(s["server"], s["state"], s["issuer"]) for s in ss], [(SERVER, "ready", ISSUER)])
        self.assertNotIn(tok["access_token"], json.dumps(ss))
        with self.assertRaises(mcpkey.McpkeyError) as cm:
            mcpkey.get_token("http://127.0.0.1:1/nothing")
        self.assertIn(cm.exception.code, ("not_found", "needs_login"))
        with self.assertRaises(mcpkey.McpkeyError) as cm:
            mcpkey.get_token(SERVER, scopes=["mcp:tools", "admin:all"])
        self.assertEqual(cm.exception.code, "needs_login")
        self.assertIn("admin:all", cm.exception.data["scopes"])

    def test_2_found_through_the_lock(self):
        with tempfile.TemporaryDirectory() as empty:
            env = {"HOME": os.environ["MCPKEY_TEST_AGENT_HOME"], "XDG_RUNTIME_DIR": empty}
            self.assertEqual(mcpkey.Client(environ=env).get_token(SERVER)["server"], SERVER)
            with self.assertRaises(mcpkey.McpkeyError) as cm:
                mcpkey.Client(environ=dict(env, HOME=empty)).get_token(SERVER)
            self.assertEqual(cm.exception.code, "no_agent")

    @unittest.skipIf(httpx is None and os.environ.get("MCPKEY_E2E_REQUIRE") != "1", "httpx missing")
    def test_3_httpx_sync_and_async(self):
        before = rs_stats()
        with httpx.Client(auth=mcpkey.McpkeyAuth(SERVER), headers=MCP_HEADERS, timeout=30) as c:
            r = c.post(SERVER, json=INITIALIZE)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertIn("mcpkey-e2e-server", r.text)

        async def run():
            async with httpx.AsyncClient(auth=mcpkey.McpkeyAuth(SERVER), headers=MCP_HEADERS, timeout=30) as c:
                return await c.post(SERVER, json=INITIALIZE)
        r = asyncio.run(run())
        self.assertEqual(r.status_code, 200, r.text)
        after = rs_stats()
        self.assertEqual((after["authorized"] - before["authorized"], after["refused"] - before["refused"]), (2, 0))

    @unittest.skipIf(httpx is None and os.environ.get("MCPKEY_E2E_REQUIRE") != "1", "httpx missing")
    def test_4_401_refreshes_once(self):
        a0, r0 = as_stats(), rs_stats()
        with httpx.Client(auth=mcpkey.McpkeyAuth(SERVER), headers=MCP_HEADERS, timeout=30,
                          event_hooks={"request": [tamper_first(1)]}) as c:
            r = c.post(SERVER, json=INITIALIZE)
        self.assertEqual(r.status_code, 200, r.text)
        a1, r1 = as_stats(), rs_stats()
        self.assertEqual(r1["refused"] - r0["refused"], 1)
        self.assertEqual(a1["refresh_grants"] - a0["refresh_grants"], 1)
        self.assertEqual(a1["code_grants"], a0["code_grants"])

    @unittest.skipIf(httpx is None and os.environ.get("MCPKEY_E2E_REQUIRE") != "1", "httpx missing")
    def test_5_needs_login_one_sign_in_for_all(self):
        mcpkey.Client().call("session.logout", {"server": SERVER, "keep_remote": True})
        self.assertEqual(mcpkey.sessions(), [])
        before = as_stats()
        codes, errors = [], []

        def caller():
            try:
                with httpx.Client(auth=mcpkey.McpkeyAuth(SERVER), headers=MCP_HEADERS, timeout=120) as c:
                    codes.append(c.post(SERVER, json=INITIALIZE).status_code)
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertEqual((codes, errors), ([200, 200, 200], []))
        self.assertEqual(as_stats()["code_grants"] - before["code_grants"], 1)

    @unittest.skipIf(httpx is None and os.environ.get("MCPKEY_E2E_REQUIRE") != "1", "httpx missing")
    def test_6_always_rejected_ends_in_token_rejected(self):
        before = as_stats()
        with httpx.Client(auth=mcpkey.McpkeyAuth(SERVER), headers=MCP_HEADERS, timeout=120,
                          event_hooks={"request": [tamper_first(100)]}) as c:
            with self.assertRaises(mcpkey.McpkeyError) as cm:
                c.post(SERVER, json=INITIALIZE)
        self.assertEqual(cm.exception.code, "token_rejected")
        after = as_stats()
        self.assertEqual((after["refresh_grants"] - before["refresh_grants"], after["code_grants"] - before["code_grants"]), (1, 1))
        mcpkey.Client().login(SERVER)  # a user's sign-in starts over


if __name__ == "__main__":
    unittest.main()
