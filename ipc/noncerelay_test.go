package ipc

import (
	"net/http"
	"net/url"
	"testing"
)

// TestNonceRelay: a DPoP-Nonce on an ordinary response is handed on once,
// for its origin only; a use_dpop_nonce challenge's is not (its request is
// retried with it).
func TestNonceRelay(t *testing.T) {
	u, _ := url.Parse("https://mcp.example/mcp")
	other, _ := url.Parse("https://elsewhere.example/mcp")
	resp := func(code int, h ...string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	var n NonceRelay
	if got := n.Take(u); got != "" {
		t.Errorf("zero relay: %q", got)
	}
	n.Saw(u, resp(200, "DPoP-Nonce", "n1"))
	if got := n.Take(other); got != "" {
		t.Errorf("another origin got %q", got)
	}
	if got := n.Take(u); got != "n1" {
		t.Errorf("Take = %q, want n1", got)
	}
	if got := n.Take(u); got != "" {
		t.Errorf("second Take = %q, want it forgotten (the agent remembers)", got)
	}
	n.Saw(u, resp(200))
	n.Saw(u, resp(401, "WWW-Authenticate", `DPoP error="use_dpop_nonce"`, "DPoP-Nonce", "n2"))
	n.Saw(u, nil)
	if got := n.Take(u); got != "" {
		t.Errorf("after no nonce, a challenge and no response: %q", got)
	}
	n.Saw(u, resp(200, "DPoP-Nonce", "n3"))
	n.Saw(u, resp(401, "WWW-Authenticate", `DPoP error="invalid_token"`, "DPoP-Nonce", "n4"))
	if got := n.Take(u); got != "n4" {
		t.Errorf("Take = %q, want the latest, n4", got)
	}
}
