package ipc

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/mcpkey/mcpkey/api"
)

// ErrOtherOrigin is returned (wrapped) by CheckOrigin and by every
// transport that attaches the agent's credentials (Client.Transport,
// AuthTransport, and through them probe, bridge and proxy) when a request
// goes to another origin than the server the credentials are for: a
// redirect (301, 302, 307, 308), or a legacy SSE endpoint event, that
// points elsewhere.
var ErrOtherOrigin = errors.New("a redirect or link to another origin")

// CheckOrigin returns nil when target has the origin (scheme, host, port)
// of server, the URL the credentials were issued for, and an error wrapping
// ErrOtherOrigin otherwise. Such a request is refused, not sent without the
// credentials: a server that moved is fixed by configuring its new URL
// (and signing in there), while following a redirect without the token
// would only end in a 401 from a server we never meant to talk to. The
// error names origins only, never a path, query or userinfo.
//
// Default ports count as given (https://h and https://h:443 are one
// origin); hosts compare case-insensitively.
func CheckOrigin(server string, target *url.URL) error {
	s, err := url.Parse(server)
	if err != nil || s.Host == "" || (s.Scheme != "http" && s.Scheme != "https") {
		return fmt.Errorf("refusing to send credentials to %s: no server URL to check it against: %w", display(target), ErrOtherOrigin)
	}
	if origin(s) != origin(target) {
		return fmt.Errorf("refusing to send the credentials for %s to %s: %w\nhint: if the server moved, configure it by the URL it answers on and sign in there",
			display(s), display(target), ErrOtherOrigin)
	}
	return nil
}

// display is scheme://host[:port] of u: no path, query or userinfo.
func display(u *url.URL) string {
	if u == nil {
		return "(no URL)"
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// origin is scheme://host:port, lower case, with the default port filled in.
func origin(u *url.URL) string {
	if u == nil {
		return ""
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// Authorize sets r's Authorization header to tok, after CheckOrigin of
// r.URL against the server tok was issued for (tok.Server). It is the one
// place the agent's tokens are attached to a request.
func Authorize(r *http.Request, tok api.Token) error {
	if err := CheckOrigin(tok.Server, r.URL); err != nil {
		return err
	}
	if tok.KeyBound() {
		// RFC 9449 §7.1: the DPoP scheme and a proof made for this request.
		if tok.DPoPProof == "" {
			return fmt.Errorf("%w (no proof in the agent's answer)", api.ErrDPoPRequired)
		}
		r.Header.Set("Authorization", api.TokenTypeDPoP+" "+tok.AccessToken)
		r.Header.Set("DPoP", tok.DPoPProof)
		return nil
	}
	r.Header.Del("DPoP")
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return nil
}

// DPoPRequest returns req for a token to use on r: the DPoP method and URL
// set, so that a key-bound session answers a proof for exactly r (bearer
// sessions ignore them).
func DPoPRequest(req api.TokenRequest, r *http.Request) api.TokenRequest {
	req.DPoPMethod, req.DPoPURL = r.Method, r.URL.String()
	return req
}

// DPoPNonce returns the nonce of a resource server's use_dpop_nonce
// challenge (RFC 9449 §9): a 401 whose WWW-Authenticate carries
// error="use_dpop_nonce" and whose DPoP-Nonce header has the nonce. The
// request is then sent again, once, with a proof carrying it.
func DPoPNonce(resp *http.Response) (string, bool) {
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		return "", false
	}
	nonce := resp.Header.Get("DPoP-Nonce")
	if nonce == "" {
		return "", false
	}
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(v, "use_dpop_nonce") {
			return nonce, true
		}
	}
	return "", false
}

// NonceRelay passes a DPoP-Nonce a resource server sent on a response that
// was not a nonce challenge (RFC 9449 §9: a server may hand out a new nonce
// on any response, a 200 included) on to the agent with the next token.get
// (dpop_nonce). The agent is the one place that remembers nonces, per
// origin, for every caller; a relay holds one only until it is reported,
// so the next proof carries it without another 401. The zero value is
// ready; safe for concurrent use.
type NonceRelay struct {
	mu            sync.Mutex
	origin, nonce string
}

// Saw notes resp's DPoP-Nonce, the answer to a request to u with a
// key-bound token. A use_dpop_nonce challenge is not noted: its request is
// retried with that nonce (DPoPNonce).
func (n *NonceRelay) Saw(u *url.URL, resp *http.Response) {
	if resp == nil {
		return
	}
	nonce := resp.Header.Get("DPoP-Nonce")
	if _, challenge := DPoPNonce(resp); nonce == "" || challenge {
		return
	}
	n.mu.Lock()
	n.origin, n.nonce = origin(u), nonce
	n.mu.Unlock()
}

// Take returns the nonce noted for u's origin, if any, and forgets it: the
// token.get it goes with tells the agent.
func (n *NonceRelay) Take(u *url.URL) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nonce == "" || n.origin != origin(u) {
		return ""
	}
	nonce := n.nonce
	n.origin, n.nonce = "", ""
	return nonce
}
