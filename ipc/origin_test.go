package ipc

import (
	"errors"
	"net/url"
	"strings"
	"testing"
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
