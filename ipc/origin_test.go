package ipc

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/api"
)

func TestCheckOrigin(t *testing.T) {
	for _, tc := range []struct {
		server, target string
		ok             bool
	}{
		{"https://mcp.example/mcp", "https://mcp.example/mcp/sse?x=1", true},
		{"https://mcp.example/mcp", "https://MCP.example:443/other", true},
		{"http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/", true},
		{"http://[::1]:80/mcp", "http://[::1]/mcp", true},
		{"https://mcp.example/mcp", "http://mcp.example/mcp", false}, // scheme
		{"https://mcp.example/mcp", "https://mcp.example:8443/mcp", false},
		{"https://mcp.example/mcp", "https://evil.example/mcp", false},
		{"https://mcp.example/mcp", "https://mcp.example.evil.example/mcp", false},
		{"", "https://mcp.example/mcp", false},
		{"demo", "https://mcp.example/mcp", false}, // a name, not a URL
	} {
		u, _ := url.Parse(tc.target)
		err := CheckOrigin(tc.server, u)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrOtherOrigin)) {
			t.Errorf("CheckOrigin(%q, %q) = %v, want ok %v", tc.server, tc.target, err, tc.ok)
		}
	}
	// The error names origins only: no userinfo, path or query.
	u, _ := url.Parse("https://user:pw-MARKER@evil.example/p-MARKER?q=MARKER")
	err := CheckOrigin("https://mcp.example/mcp?k=MARKER", u)
	if err == nil || strings.Contains(err.Error(), "MARKER") || !strings.Contains(err.Error(), "https://evil.example") {
		t.Errorf("error = %v", err)
	}
}

// TestAuthorizeDPoP: a key-bound token goes out with the DPoP scheme and
// its proof; one without a proof is refused, never sent as a bare token;
// a bearer token clears a DPoP header the caller left on the request.
func TestAuthorizeDPoP(t *testing.T) {
	r, _ := http.NewRequest("POST", "https://mcp.example.com/mcp", nil)
	tok := api.Token{AccessToken: "at", TokenType: "DPoP", DPoPProof: "proof", Server: "https://mcp.example.com/mcp"}
	if err := Authorize(r, tok); err != nil || r.Header.Get("Authorization") != "DPoP at" || r.Header.Get("DPoP") != "proof" {
		t.Errorf("key-bound: %v, headers %v", err, r.Header)
	}
	r, _ = http.NewRequest("POST", "https://mcp.example.com/mcp", nil)
	tok.DPoPProof = ""
	if err := Authorize(r, tok); !errors.Is(err, api.ErrDPoPRequired) || r.Header.Get("Authorization") != "" {
		t.Errorf("key-bound without a proof: %v, Authorization %q", err, r.Header.Get("Authorization"))
	}
	r.Header.Set("DPoP", "stale")
	if err := Authorize(r, api.Token{AccessToken: "bt", TokenType: "bearer", Server: "https://mcp.example.com/mcp"}); err != nil ||
		r.Header.Get("Authorization") != "Bearer bt" || r.Header.Get("DPoP") != "" {
		t.Errorf("bearer: %v, headers %v", err, r.Header)
	}
}

// TestDPoPNonce: only a 401 use_dpop_nonce challenge with a DPoP-Nonce
// header asks for a retry.
func TestDPoPNonce(t *testing.T) {
	resp := func(status int, h ...string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		for i := 0; i < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	if n, ok := DPoPNonce(resp(401, "WWW-Authenticate", `DPoP error="use_dpop_nonce"`, "DPoP-Nonce", "n1")); !ok || n != "n1" {
		t.Errorf("challenge: %q %t", n, ok)
	}
	for _, r := range []*http.Response{
		resp(401, "WWW-Authenticate", `DPoP error="invalid_token"`, "DPoP-Nonce", "n1"),
		resp(401, "WWW-Authenticate", `DPoP error="use_dpop_nonce"`),
		resp(200, "DPoP-Nonce", "n1"),
		nil,
	} {
		if _, ok := DPoPNonce(r); ok {
			t.Errorf("retry asked for by %+v", r)
		}
	}
}
