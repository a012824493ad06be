package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		headers []string
		want    Challenge
		wantErr bool
	}{
		{
			name:    "no header",
			status:  401,
			headers: nil,
			want:    Challenge{Status: 401},
		},
		{
			name:    "bearer with resource_metadata and scope",
			status:  401,
			headers: []string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read files:write"`},
			want: Challenge{Status: 401, ResourceMetadata: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
				Scopes: []string{"files:read", "files:write"}},
		},
		{
			name:   "several challenges in one header, bearer second, commas in quotes",
			status: 401,
			headers: []string{`Basic realm="a, b", Bearer realm="mcp, \"x\"", error="invalid_token", ` +
				`resource_metadata="https://h/prm", scope="a"`},
			want: Challenge{Status: 401, ResourceMetadata: "https://h/prm", Scopes: []string{"a"}, Error: "invalid_token"},
		},
		{
			name:    "several header lines, scheme and keys case-insensitive",
			status:  403,
			headers: []string{`Basic realm="x"`, `BEARER Error="insufficient_scope", Scope="mcp:write mcp:read", RESOURCE_METADATA="https://h/prm"`},
			want:    Challenge{Status: 403, ResourceMetadata: "https://h/prm", Scopes: []string{"mcp:write", "mcp:read"}, Error: "insufficient_scope"},
		},
		{
			name:    "token values",
			status:  401,
			headers: []string{`Bearer error=invalid_token, scope=x`},
			want:    Challenge{Status: 401, Scopes: []string{"x"}, Error: "invalid_token"},
		},
		{
			name:    "first bearer challenge wins",
			status:  401,
			headers: []string{`Bearer scope="one"`, `Bearer scope="two"`},
			want:    Challenge{Status: 401, Scopes: []string{"one"}},
		},
		{
			name:    "no bearer challenge",
			status:  401,
			headers: []string{`Basic realm="x"`},
			want:    Challenge{Status: 401},
		},
		{
			name:    "bare bearer",
			status:  401,
			headers: []string{`Bearer`},
			want:    Challenge{Status: 401},
		},
		{
			name:    "unterminated quote",
			status:  401,
			headers: []string{`Bearer scope="a`},
			want:    Challenge{Status: 401},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.headers {
				h.Add("WWW-Authenticate", v)
			}
			got, err := ParseChallenge(tt.status, h)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got == nil || !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	type seen struct {
		method, accept, ctype, version, rpcMethod, auth string
	}
	tests := []struct {
		name    string
		status  int
		header  string
		want    *Challenge
		wantErr string
	}{
		{"401 with challenge", 401, `Bearer resource_metadata="http://x/prm", scope="a b"`,
			&Challenge{Status: 401, ResourceMetadata: "http://x/prm", Scopes: []string{"a", "b"}}, ""},
		{"401 without header", 401, "", &Challenge{Status: 401}, ""},
		{"401 with a garbled header", 401, `Bearer scope="a`, &Challenge{Status: 401}, ""},
		{"403 insufficient_scope", 403, `Bearer error="insufficient_scope", scope="w"`,
			&Challenge{Status: 403, Scopes: []string{"w"}, Error: "insufficient_scope"}, ""},
		{"200 needs no auth", 200, "", nil, ""},
		{"202 needs no auth", 202, "", nil, ""},
		{"400 (a server that wants a session) goes on to well-known discovery", 400, "", &Challenge{Status: 400}, ""},
		{"404 goes on to well-known discovery", 404, "", &Challenge{Status: 404}, ""},
		{"500 is an error", 500, "", nil, "unexpected status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body struct {
					JSONRPC string `json:"jsonrpc"`
					Method  string `json:"method"`
					Params  struct {
						ProtocolVersion string `json:"protocolVersion"`
					} `json:"params"`
				}
				b, _ := io.ReadAll(r.Body)
				json.Unmarshal(b, &body)
				got <- seen{r.Method, r.Header.Get("Accept"), r.Header.Get("Content-Type"),
					r.Header.Get("MCP-Protocol-Version"), body.Method + "/" + body.JSONRPC + "/" + body.Params.ProtocolVersion,
					r.Header.Get("Authorization")}
				if tt.header != "" {
					w.Header().Set("WWW-Authenticate", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			ch, err := Probe(context.Background(), NewHTTPClient(HTTPOptions{}), srv.URL+"/mcp")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), srv.URL+"/mcp") {
					t.Fatalf("err = %v, want %q and the URL", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ch, tt.want) {
				t.Errorf("challenge = %+v, want %+v", ch, tt.want)
			}
			s := <-got
			want := seen{"POST", "application/json, text/event-stream", "application/json", ProtocolVersion,
				"ping/2.0/", ""}
			if s != want {
				t.Errorf("request = %+v, want %+v", s, want)
			}
		})
	}
}

func TestProbeRefusedByPolicy(t *testing.T) {
	_, err := Probe(context.Background(), NewHTTPClient(HTTPOptions{}), "http://example.com/mcp")
	policyErr(t, err)
}
