"""McpkeyAuth: an httpx.Auth that adds the agent's token to every request."""

import re
import sys
import threading

import httpx

from . import Client, McpkeyError

_DPOP_NONCE = re.compile(r'error\s*=\s*"?use_dpop_nonce"?', re.I)
_DPOP_SCHEME = re.compile(r"(^|[\s,])dpop\s", re.I)


def _origin(url):
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return (url.scheme, url.host.lower(), port)


def check_origin(server, url):
    """Refuses to send server's credentials to another origin (ipc.CheckOrigin)."""
    try:
        s = httpx.URL(server)
    except Exception:
        s = None
    if s is None or s.scheme not in ("http", "https") or not s.host or _origin(s) != _origin(url):
        raise McpkeyError("other_origin", "mcpkey: refusing to send the credentials for %s to %s://%s"
                          % (server, url.scheme, url.netloc.decode("ascii", "replace")))


def auth_headers(tok):
    """The Authorization (and, for a DPoP token, DPoP) headers for a token.get result."""
    if tok.get("token_type", "").lower() == "dpop":
        if not tok.get("dpop_proof"):
            raise McpkeyError("internal", "mcpkey: the agent sent a DPoP token for %s without a proof" % tok.get("server"))
        return {"Authorization": "DPoP " + tok["access_token"], "DPoP": tok["dpop_proof"]}
    return {"Authorization": "Bearer " + tok["access_token"]}


def dpop_nonce_challenge(response):
    """The DPoP-Nonce of a 401 that says error="use_dpop_nonce" (RFC 9449 §9), or None."""
    nonce = response.headers.get("dpop-nonce")
    www = response.headers.get("www-authenticate", "")
    if nonce and _DPOP_SCHEME.search(www) and _DPOP_NONCE.search(www):
        return nonce
    return None


_INSUFFICIENT = re.compile(r'error\s*=\s*"?insufficient_scope"?', re.I)
_SCOPE = re.compile(r'(?:^|[\s,])scope\s*=\s*"([^"]*)"', re.I)


def insufficient_scope(response):
    """The scopes a 403 asks for when it says error="insufficient_scope"
    (RFC 6750 §3.1; MCP's step-up), or None for any other response."""
    www = response.headers.get("www-authenticate", "")
    if response.status_code != 403 or not _INSUFFICIENT.search(www):
        return None
    m = _SCOPE.search(www)
    return m.group(1).split() if m else []


def _union(*lists):
    out = []
    for lst in lists:
        out.extend(s for s in lst or () if s not in out)
    return out


def _show_url(server):
    def show(ev):
        if ev.get("show_url") and ev.get("url"):
            print("mcpkey: open this URL to sign in to %s: %s" % (server, ev["url"]), file=sys.stderr)
        if ev.get("user_code"):
            print("mcpkey: and enter the code %s" % ev["user_code"], file=sys.stderr)
    return show


class McpkeyAuth(httpx.Auth):
    """Adds the mcpkey agent's token for server to every request.

    For the official MCP Python SDK's HTTP transports and any httpx client:
    httpx.AsyncClient(auth=McpkeyAuth(url)). The agent caches, refreshes and
    stores; this process never sees a refresh token. A 401 reports the token
    to the agent as rejected and retries once with the token it answers (the
    agent refreshes once for all callers, and ends a series of rejections
    with one extra sign-in, then token_rejected). When the agent answers
    needs_login and login is true, the agent signs in (one browser tab for
    every caller) and the request goes on; a 403 insufficient_scope signs in
    again for the union of the scopes asked so far and the challenge's (a
    step-up). For a DPoP-bound session the agent signs a proof per request
    (and once more with a DPoP-Nonce the server asks for); a DPoP-Nonce on
    any other response goes to the agent with the next token request, so
    the next proof carries it (RFC 9449 §9: servers may rotate nonces on
    any response). A request to another origin is refused (other_origin).
    In an async client the agent is asked from a worker thread.
    """

    requires_request_body = True  # a retry sends the body again

    def __init__(self, server, scopes=None, account=None, client=None, login=True, max_logins=3, on_login_event=None):
        self.server = server
        self.scopes = list(scopes) if scopes else None
        self.account = account
        self.client = client or Client()
        self.login = login
        self.max_logins = max_logins
        self.on_login_event = on_login_event or _show_url(server)
        self._logins = 0
        self._lock = threading.Lock()
        self._nonce = None  # (origin, DPoP-Nonce) seen since the last token request; the agent remembers it
        try:
            u = httpx.URL(server)
            self._server_url = u.scheme in ("http", "https") and bool(u.host)
        except Exception:
            self._server_url = False

    def _take_login(self):
        with self._lock:
            if not self.login or self._logins >= self.max_logins:
                return False
            self._logins += 1
            return True

    def _saw_nonce(self, url, response):
        """Notes a DPoP-Nonce of a response that is not a nonce challenge
        (that one is retried with), for the next token request to report."""
        nonce = response.headers.get("dpop-nonce")
        if nonce and dpop_nonce_challenge(response) is None:
            with self._lock:
                self._nonce = (_origin(url), nonce)

    def _take_nonce(self, url):
        """The nonce noted for url's origin, forgotten: the agent keeps it."""
        with self._lock:
            noted, self._nonce = self._nonce, None
        return noted[1] if noted and noted[0] == _origin(url) else None

    def _flow(self, request):
        """The logic, as a generator of steps: ("agent", fn, kwargs) gets
        fn's result (or its McpkeyError thrown in), ("send", request) the
        response."""
        if self._server_url:
            check_origin(self.server, request.url)
        htu = str(request.url.copy_with(query=None, fragment=None))
        rejected, nonce, nonce_tried, reports = None, None, False, 0
        while True:
            try:
                tok = yield ("agent", self.client.get_token, dict(
                    server=self.server, scopes=self.scopes, account=self.account, rejected_token=rejected,
                    dpop_method=request.method, dpop_url=htu, dpop_nonce=nonce or self._take_nonce(request.url)))
            except McpkeyError as e:
                if e.code == "needs_login" and self._take_login():
                    yield ("agent", self.client.login, dict(server=self.server, scopes=e.data.get("scopes") or self.scopes,
                                                            account=self.account, on_progress=self.on_login_event))
                    rejected = None
                    continue
                raise
            check_origin(tok["server"], request.url)
            request.headers.pop("DPoP", None)
            request.headers.update(auth_headers(tok))
            response = yield ("send", request)
            if tok.get("token_type", "").lower() == "dpop":
                self._saw_nonce(request.url, response)
            more = insufficient_scope(response)
            if more is not None:
                # Step-up: sign in again for the union of the scopes asked
                # so far and the challenge's, unless the token has them all
                # (another sign-in would only loop) or logins are used up.
                held = tok.get("scopes") or []
                if not more or all(sc in held for sc in more) or not self._take_login():
                    return
                with self._lock:
                    self.scopes = _union(self.scopes, held, more)
                yield ("agent", self.client.login, dict(server=self.server, scopes=self.scopes, account=self.account,
                                                        on_progress=self.on_login_event))
                rejected = None
                continue
            if response.status_code != 401:
                return
            challenge = dpop_nonce_challenge(response) if tok.get("token_type", "").lower() == "dpop" else None
            if challenge and not nonce_tried:
                nonce, nonce_tried = challenge, True
                continue
            # The agent answered the very token reported: nothing newer. The
            # bound is a backstop: the agent ends a series of rejections.
            reports += 1
            if rejected == tok["access_token"] or reports > 3:
                return
            rejected = tok["access_token"]

    def sync_auth_flow(self, request):
        flow = self._flow(request)
        step = _advance(flow, None, None)
        while step is not None:
            if step[0] == "send":
                step = _advance(flow, (yield step[1]), None)
            else:
                step = _advance(flow, *_run(step))

    async def async_auth_flow(self, request):
        import anyio.to_thread  # httpx's own dependency

        flow = self._flow(request)
        step = _advance(flow, None, None)
        while step is not None:
            if step[0] == "send":
                step = _advance(flow, (yield step[1]), None)
            else:
                step = _advance(flow, *await anyio.to_thread.run_sync(_run, step))


def _advance(flow, value, exc):
    """The flow's next step, given the last one's value or error; None at its end."""
    try:
        return flow.throw(exc) if exc else flow.send(value)
    except StopIteration:
        return None


def _run(step):
    """Runs an ("agent", fn, kwargs) step: (result, None) or (None, McpkeyError)."""
    try:
        return step[1](**step[2]), None
    except McpkeyError as e:
        return None, e
