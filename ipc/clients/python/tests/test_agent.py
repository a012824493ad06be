"""Tests against a real agent, the e2e authorization server and the go-sdk
resource server, which e2e/clients_test.go starts, signs in to and describes
in the environment (MCPKEY_SOCK, MCPKEY_TEST_SERVER, MCPKEY_TEST_AS,
MCPKEY_TEST_AGENT_HOME, and MCPKEY_TEST_DPOP_SERVER: a go-sdk server that
takes only DPoP-bound tokens and rotates its nonce on every response, with
a signed-in session). Without them the tests skip, or fail under
MCPKEY_E2E_REQUIRE=1. They share one agent and run in order."""

import asyncio
import base64
import hashlib
import json
import os
import tempfile
import threading
import unittest
import urllib.request

import mcpkey

SERVER = os.environ.get("MCPKEY_TEST_SERVER")
ISSUER = os.environ.get("MCPKEY_TEST_AS")
DPOP_SERVER = os.environ.get("MCPKEY_TEST_DPOP_SERVER")
REQUIRED = os.environ.get("MCPKEY_E2E_REQUIRE") == "1"
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


def rs_stats(server=None):
    return stats((server or SERVER).rsplit("/mcp", 1)[0] + "/_test/stats")


def mine():
    """The agent's sessions for the test server (it holds the DPoP server's too)."""
    return [s for s in mcpkey.sessions() if s["server"] == SERVER]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_part(token, i):
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


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
        ss = mine()
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
        self.assertEqual(mine(), [])
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

    @unittest.skipIf(httpx is None and not REQUIRED, "httpx missing")
    def test_7_dpop_a_proof_per_request(self):
        if "dpop" not in mcpkey.Client().hello()["capabilities"]:
            self.skipTest('the agent does not announce "dpop" in agent.hello')
        self.assertTrue(DPOP_SERVER, "the agent speaks DPoP: e2e/clients_test.go must sign in to a DPoP server "
                        "and set MCPKEY_TEST_DPOP_SERVER")
        sent, got = [], []

        def on_request(request):
            sent.append((request.method, str(request.url), request.headers.get("authorization"), request.headers.get("dpop")))

        def on_response(response):
            got.append((response.status_code, response.headers.get("dpop-nonce"), response.headers.get("www-authenticate", "")))

        before = rs_stats(DPOP_SERVER)
        with httpx.Client(auth=mcpkey.McpkeyAuth(DPOP_SERVER), headers=MCP_HEADERS, timeout=30,
                          event_hooks={"request": [on_request], "response": [on_response]}) as c:
            r = c.post(DPOP_SERVER + "?q=1", json=INITIALIZE)
            self.assertEqual(r.status_code, 200, r.text)
            c.headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
            r = c.post(DPOP_SERVER, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            self.assertEqual(r.status_code, 202, r.text)
            for i in range(3):
                r = c.post(DPOP_SERVER, json={"jsonrpc": "2.0", "id": 2 + i, "method": "tools/call",
                                              "params": {"name": "echo", "arguments": {"text": "bound %d" % i}}})
                self.assertEqual(r.status_code, 200, r.text)
                self.assertIn("bound %d" % i, r.text)
        after = rs_stats(DPOP_SERVER)

        # The first request meets the server's nonce challenge (the agent
        # knows no nonce of it yet) and is sent once more with the nonce.
        self.assertEqual([g[0] for g in got], [401, 200, 202, 200, 200, 200])
        self.assertIn("use_dpop_nonce", got[0][2])
        jtis = set()
        for i, (method, url, authz, proof) in enumerate(sent):
            self.assertTrue(authz and authz.startswith("DPoP "), "request %d: Authorization %r" % (i, authz and authz[:6]))
            self.assertTrue(proof, "request %d has no DPoP proof" % i)
            self.assertEqual(jwt_part(proof, 0)["typ"], "dpop+jwt")
            claims = jwt_part(proof, 1)
            self.assertEqual(claims["htm"], method)
            self.assertEqual(claims["htu"], DPOP_SERVER)  # no query (RFC 9449 §4.2)
            self.assertEqual(claims["ath"], b64url(hashlib.sha256(authz[5:].encode()).digest()))
            self.assertNotIn(claims["jti"], jtis, "a proof is never reused")
            jtis.add(claims["jti"])
            # Each proof carries the nonce of the response before it: the
            # challenge's, then each new one the server rotated to on a 200
            # (RFC 9449 §9), so no request needs another round trip.
            if i > 0:
                self.assertTrue(got[i - 1][1], "response %d carried no DPoP-Nonce" % (i - 1))
                self.assertEqual(claims.get("nonce"), got[i - 1][1], "request %d" % i)
        self.assertEqual(sent[0][2], sent[1][2], "the retry presents the same token")
        self.assertEqual((after["nonce_challenges"] - before["nonce_challenges"],
                          after["proofs_refused"] - before["proofs_refused"],
                          after["authorized"] - before["authorized"]), (1, 0, 5))


if __name__ == "__main__":
    unittest.main()
