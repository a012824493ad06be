package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// site is a real HTTP server that serves JSON documents at exact request
// URIs, answers 404 elsewhere and records every request in order.
type site struct {
	srv    *httptest.Server
	mu     sync.Mutex
	log    []string
	proto  []string
	routes map[string]http.HandlerFunc
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{routes: map[string]http.HandlerFunc{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.log = append(s.log, r.Method+" "+r.URL.RequestURI())
		s.proto = append(s.proto, r.Header.Get("MCP-Protocol-Version"))
		h := s.routes[r.URL.RequestURI()]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) URL() string { return s.srv.URL }

func (s *site) json(uri string, v any) {
	s.handle(uri, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	})
}

func (s *site) handle(uri string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[uri] = h
}

func (s *site) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func prmDoc(resource string, servers ...string) map[string]any {
	return map[string]any{"resource": resource, "authorization_servers": servers}
}

func asDoc(issuer string) map[string]any {
	base := strings.TrimSuffix(issuer, "/")
	return map[string]any{
		"issuer":                           issuer,
		"authorization_endpoint":           base + "/authorize",
		"token_endpoint":                   base + "/token",
		"registration_endpoint":            base + "/register",
		"code_challenge_methods_supported": []string{"S256"},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func discoverT(t *testing.T, serverURL string, ch *Challenge, opts DiscoverOptions) (*Discovery, error) {
	t.Helper()
	return Discover(context.Background(), NewHTTPClient(HTTPOptions{}), serverURL, ch, opts)
}

func wantRequests(t *testing.T, s *site, want ...string) {
	t.Helper()
	if got := s.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %q\nwant %q", got, want)
	}
}

func wantRefused(t *testing.T, err error, rule string, inMsg ...string) {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RefusedError", err)
	}
	if !strings.Contains(err.Error(), rule) {
		t.Errorf("err %q does not name rule %q", err, rule)
	}
	for _, s := range inMsg {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err %q does not mention %q", err, s)
		}
	}
}

// TestDiscoverPRMOrder covers where PRM is looked for and which resource
// each location may name.
func TestDiscoverPRMOrder(t *testing.T) {
	const pathPRM = "/.well-known/oauth-protected-resource/mcp"
	const rootPRM = "/.well-known/oauth-protected-resource"
	tests := []struct {
		name string
		// setup serves documents on rs (the MCP server) and returns the
		// challenge; as is the AS site.
		setup        func(rs, as *site) *Challenge
		serverPath   string
		wantRS       []string
		wantResource func(rs *site) string
		wantPRMURL   func(rs *site) string
	}{
		{
			name: "challenge URL first, nothing else fetched (metadata-default)",
			setup: func(rs, as *site) *Challenge {
				rs.json(pathPRM, prmDoc(rs.URL()+"/mcp", as.URL()))
				rs.json(rootPRM, prmDoc(rs.URL(), "http://127.0.0.1:1"))
				return &Challenge{Status: 401, ResourceMetadata: rs.URL() + pathPRM}
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET " + pathPRM},
			wantResource: func(rs *site) string { return rs.URL() + "/mcp" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + pathPRM },
		},
		{
			name: "custom challenge URL (metadata-var3)",
			setup: func(rs, as *site) *Challenge {
				rs.json("/custom/metadata/location.json", prmDoc(rs.URL()+"/mcp", as.URL()))
				return &Challenge{Status: 401, ResourceMetadata: rs.URL() + "/custom/metadata/location.json"}
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET /custom/metadata/location.json"},
			wantResource: func(rs *site) string { return rs.URL() + "/mcp" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + "/custom/metadata/location.json" },
		},
		{
			name: "no challenge: path-inserted (metadata-var1)",
			setup: func(rs, as *site) *Challenge {
				rs.json(pathPRM, prmDoc(rs.URL()+"/mcp", as.URL()))
				return nil
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET " + pathPRM},
			wantResource: func(rs *site) string { return rs.URL() + "/mcp" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + pathPRM },
		},
		{
			name: "challenge URL missing, then path-inserted, then root with the origin (metadata-var2)",
			setup: func(rs, as *site) *Challenge {
				rs.json(rootPRM, prmDoc(rs.URL(), as.URL()))
				return &Challenge{Status: 401, ResourceMetadata: rs.URL() + "/gone"}
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET /gone", "GET " + pathPRM, "GET " + rootPRM},
			wantResource: func(rs *site) string { return rs.URL() },
			wantPRMURL:   func(rs *site) string { return rs.URL() + rootPRM },
		},
		{
			name: "root naming the endpoint itself is accepted",
			setup: func(rs, as *site) *Challenge {
				rs.json(rootPRM, prmDoc(rs.URL()+"/mcp", as.URL()))
				return nil
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET " + pathPRM, "GET " + rootPRM},
			wantResource: func(rs *site) string { return rs.URL() + "/mcp" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + rootPRM },
		},
		{
			name: "server without a path: root only",
			setup: func(rs, as *site) *Challenge {
				rs.json(rootPRM, prmDoc(rs.URL(), as.URL()))
				return nil
			},
			serverPath:   "",
			wantRS:       []string{"GET " + rootPRM},
			wantResource: func(rs *site) string { return rs.URL() },
			wantPRMURL:   func(rs *site) string { return rs.URL() + rootPRM },
		},
		{
			name: "path-inserted keeps the query",
			setup: func(rs, as *site) *Challenge {
				rs.json("/.well-known/oauth-protected-resource/t/mcp?x=1", prmDoc(rs.URL()+"/t/mcp?x=1", as.URL()))
				return nil
			},
			serverPath:   "/t/mcp?x=1",
			wantRS:       []string{"GET /.well-known/oauth-protected-resource/t/mcp?x=1"},
			wantResource: func(rs *site) string { return rs.URL() + "/t/mcp?x=1" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + "/.well-known/oauth-protected-resource/t/mcp?x=1" },
		},
		{
			name: "challenge URL with a mismatched resource is skipped for a valid path-inserted one",
			setup: func(rs, as *site) *Challenge {
				rs.json("/evil", prmDoc("https://evil.example.com/mcp", as.URL()))
				rs.json(pathPRM, prmDoc(rs.URL()+"/mcp", as.URL()))
				return &Challenge{Status: 401, ResourceMetadata: rs.URL() + "/evil"}
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET /evil", "GET " + pathPRM},
			wantResource: func(rs *site) string { return rs.URL() + "/mcp" },
			wantPRMURL:   func(rs *site) string { return rs.URL() + pathPRM },
		},
		{
			name: "HTML catch-all page counts as no document",
			setup: func(rs, as *site) *Challenge {
				rs.handle(pathPRM, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					w.Write([]byte("<html>app</html>"))
				})
				rs.json(rootPRM, prmDoc(rs.URL(), as.URL()))
				return nil
			},
			serverPath:   "/mcp",
			wantRS:       []string{"GET " + pathPRM, "GET " + rootPRM},
			wantResource: func(rs *site) string { return rs.URL() },
			wantPRMURL:   func(rs *site) string { return rs.URL() + rootPRM },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, as := newSite(t), newSite(t)
			as.json("/.well-known/oauth-authorization-server", with(asDoc(as.URL()), "scopes_supported", []string{"x"}))
			ch := tt.setup(rs, as)
			d, err := discoverT(t, rs.URL()+tt.serverPath, ch, DiscoverOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantRequests(t, rs, tt.wantRS...)
			if d.ServerURL != rs.URL()+tt.serverPath {
				t.Errorf("ServerURL = %q", d.ServerURL)
			}
			if d.Resource != tt.wantResource(rs) {
				t.Errorf("Resource = %q, want %q", d.Resource, tt.wantResource(rs))
			}
			if d.ResourceMetadataURL != tt.wantPRMURL(rs) {
				t.Errorf("ResourceMetadataURL = %q, want %q", d.ResourceMetadataURL, tt.wantPRMURL(rs))
			}
			if !reflect.DeepEqual(d.AuthorizationServers, []string{as.URL()}) {
				t.Errorf("AuthorizationServers = %q", d.AuthorizationServers)
			}
			if d.Challenge != ch {
				t.Errorf("Challenge = %+v, want the probe's", d.Challenge)
			}
			want := &AuthServer{
				Issuer:                        as.URL(),
				AuthorizationEndpoint:         as.URL() + "/authorize",
				TokenEndpoint:                 as.URL() + "/token",
				RegistrationEndpoint:          as.URL() + "/register",
				CodeChallengeMethodsSupported: []string{"S256"},
				ScopesSupported:               []string{"x"},
			}
			if !reflect.DeepEqual(d.AS, want) {
				t.Errorf("AS = %+v\nwant %+v", d.AS, want)
			}
		})
	}
}

func TestDiscoverPRMRefusals(t *testing.T) {
	const pathPRM = "/.well-known/oauth-protected-resource/mcp"
	tests := []struct {
		name    string
		setup   func(rs, as *site) *Challenge
		rule    string
		inMsg   func(rs *site) []string
		isNoPRM bool
	}{
		{
			name: "foreign resource at the only PRM (resource-mismatch)",
			setup: func(rs, as *site) *Challenge {
				rs.json(pathPRM, prmDoc("https://evil.example.com/mcp", as.URL()))
				return &Challenge{Status: 401, ResourceMetadata: rs.URL() + pathPRM}
			},
			rule: "RFC 9728 §3.3",
			inMsg: func(rs *site) []string {
				return []string{rs.URL() + pathPRM, `"https://evil.example.com/mcp"`, `not "` + rs.URL() + `/mcp"`}
			},
		},
		{
			name: "trailing slash added to the resource",
			setup: func(rs, as *site) *Challenge {
				rs.json(pathPRM, prmDoc(rs.URL()+"/mcp/", as.URL()))
				return nil
			},
			rule:  "RFC 9728 §3.3",
			inMsg: func(rs *site) []string { return []string{rs.URL() + "/mcp/"} },
		},
		{
			name: "root naming a foreign path",
			setup: func(rs, as *site) *Challenge {
				rs.json("/.well-known/oauth-protected-resource", prmDoc(rs.URL()+"/other", as.URL()))
				return nil
			},
			rule: "RFC 9728 §3.3",
		},
		{
			name: "no authorization servers",
			setup: func(rs, as *site) *Challenge {
				rs.json(pathPRM, prmDoc(rs.URL()+"/mcp"))
				return nil
			},
			rule: "lists no authorization_servers",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, as := newSite(t), newSite(t)
			as.json("/.well-known/oauth-authorization-server", asDoc(as.URL()))
			ch := tt.setup(rs, as)
			_, err := discoverT(t, rs.URL()+"/mcp", ch, DiscoverOptions{})
			var msgs []string
			if tt.inMsg != nil {
				msgs = tt.inMsg(rs)
			}
			wantRefused(t, err, tt.rule, msgs...)
			// A refused PRM never leads to the AS, nor to the 2025-03-26
			// fallback at the server's origin.
			wantRequests(t, as)
			for _, r := range rs.requests() {
				if strings.Contains(r, "oauth-authorization-server") || strings.Contains(r, "openid") {
					t.Errorf("fell back to legacy discovery: %s", r)
				}
			}
		})
	}

	t.Run("server error is not a missing document", func(t *testing.T) {
		rs := newSite(t)
		rs.handle(pathPRM, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 502) })
		_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		if err == nil || !strings.Contains(err.Error(), "unexpected status 502") || !strings.Contains(err.Error(), rs.URL()+pathPRM) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("invalid JSON with a JSON content type", func(t *testing.T) {
		rs := newSite(t)
		rs.handle(pathPRM, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write([]byte("{nope"))
		})
		_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		if err == nil || !strings.Contains(err.Error(), "invalid JSON") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("challenge URL refused by the hardened client", func(t *testing.T) {
		rs := newSite(t)
		_, err := discoverT(t, rs.URL()+"/mcp", &Challenge{Status: 401, ResourceMetadata: "https://10.0.0.1/prm"}, DiscoverOptions{})
		if pe := policyErr(t, err); !strings.Contains(pe.Rule, "private") {
			t.Errorf("got %+v", pe)
		}
	})
	t.Run("bad server URL", func(t *testing.T) {
		for _, u := range []string{"mcp.example.com", "ftp://x/y", "https://x/mcp#frag", "https://u:p@x/mcp"} {
			if _, err := discoverT(t, u, nil, DiscoverOptions{}); err == nil {
				t.Errorf("%s: no error", u)
			}
		}
	})
}

// TestDiscoverASOrder checks the RFC 8414 / OIDC URL order for issuers with
// and without a path.
func TestDiscoverASOrder(t *testing.T) {
	tests := []struct {
		name       string
		issuerPath string
		serveAt    string // where the document is; "" = nowhere
		want       []string
	}{
		{"no path, RFC 8414", "", "/.well-known/oauth-authorization-server",
			[]string{"/.well-known/oauth-authorization-server"}},
		{"no path, OIDC (metadata-var1)", "", "/.well-known/openid-configuration",
			[]string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}},
		{"path, RFC 8414 inserted (metadata-var2)", "/tenant1", "/.well-known/oauth-authorization-server/tenant1",
			[]string{"/.well-known/oauth-authorization-server/tenant1"}},
		{"path, OIDC inserted", "/tenant1", "/.well-known/openid-configuration/tenant1",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1"}},
		{"path, OIDC appended (metadata-var3)", "/tenant1", "/tenant1/.well-known/openid-configuration",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration"}},
		{"path with a trailing slash is stripped before insertion", "/tenant1/", "/tenant1/.well-known/openid-configuration",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, as := newSite(t), newSite(t)
			issuer := as.URL() + tt.issuerPath
			rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", issuer))
			as.json(tt.serveAt, asDoc(issuer))
			d, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, p := range tt.want {
				want = append(want, "GET "+p)
			}
			wantRequests(t, as, want...)
			if d.AS.Issuer != issuer {
				t.Errorf("issuer = %q, want %q", d.AS.Issuer, issuer)
			}
			if d.AS.TokenEndpoint != strings.TrimSuffix(issuer, "/")+"/token" {
				t.Errorf("token endpoint = %q", d.AS.TokenEndpoint)
			}
			for _, p := range as.proto {
				if p != ProtocolVersion {
					t.Errorf("MCP-Protocol-Version = %q", p)
				}
			}
		})
	}
}

func TestDiscoverASRefusals(t *testing.T) {
	tests := []struct {
		name  string
		doc   func(issuer string) map[string]any
		rule  string
		inMsg []string
	}{
		{"issuer differs by a trailing slash", func(i string) map[string]any { return with(asDoc(i), "issuer", i+"/") },
			"RFC 8414 §3.3", []string{"names issuer"}},
		{"issuer of another server", func(i string) map[string]any { return with(asDoc(i), "issuer", "https://evil.example.com") },
			"RFC 8414 §3.3", []string{`"https://evil.example.com"`}},
		{"PKCE methods absent", func(i string) map[string]any { return with(asDoc(i), "code_challenge_methods_supported", nil) },
			"Authorization Code Protection", []string{"lacks code_challenge_methods_supported"}},
		{"PKCE without S256", func(i string) map[string]any {
			return with(asDoc(i), "code_challenge_methods_supported", []string{"plain"})
		}, "OAuth 2.1 §4.1.1", []string{"without S256"}},
		{"token endpoint over http on a public host", func(i string) map[string]any {
			return with(asDoc(i), "token_endpoint", "http://as.example.com/token")
		}, "Communication Security", []string{"token_endpoint http://as.example.com/token is not https"}},
		{"javascript authorization endpoint", func(i string) map[string]any {
			return with(asDoc(i), "authorization_endpoint", "javascript:alert(1)")
		}, "RFC 8414 §2", []string{"invalid authorization_endpoint"}},
		{"no token endpoint", func(i string) map[string]any { return with(asDoc(i), "token_endpoint", nil) },
			"RFC 8414 §2", []string{"lacks token_endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, as := newSite(t), newSite(t)
			rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", as.URL()))
			as.json("/.well-known/oauth-authorization-server", tt.doc(as.URL()))
			_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
			if !errors.Is(err, ErrNoAuthServer) {
				t.Errorf("err = %v, want ErrNoAuthServer", err)
			}
			wantRefused(t, err, tt.rule, append(tt.inMsg, as.URL()+"/.well-known/oauth-authorization-server")...)
			// Both URLs were tried; the refusal stands.
			wantRequests(t, as, "GET /.well-known/oauth-authorization-server", "GET /.well-known/openid-configuration")
		})
	}

	t.Run("no metadata at a PRM-named AS", func(t *testing.T) {
		rs, as := newSite(t), newSite(t)
		rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", as.URL()))
		_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		wantRefused(t, err, "RFC 8414 §3", "publishes no metadata")
	})
	t.Run("issuer with a query", func(t *testing.T) {
		rs, as := newSite(t), newSite(t)
		rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", as.URL()+"?x=1"))
		_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		wantRefused(t, err, "RFC 8414 §2")
		wantRequests(t, as)
	})
}

func TestDiscoverChoosesAS(t *testing.T) {
	rs, bad, good := newSite(t), newSite(t), newSite(t)
	rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", bad.URL(), good.URL()))
	bad.json("/.well-known/oauth-authorization-server", with(asDoc(bad.URL()), "code_challenge_methods_supported", nil))
	good.json("/.well-known/oauth-authorization-server", asDoc(good.URL()))

	d, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.AS.Issuer != good.URL() {
		t.Errorf("chose %q, want the second AS %q", d.AS.Issuer, good.URL())
	}
	wantRequests(t, bad, "GET /.well-known/oauth-authorization-server", "GET /.well-known/openid-configuration")
	wantRequests(t, good, "GET /.well-known/oauth-authorization-server")
	if !reflect.DeepEqual(d.AuthorizationServers, []string{bad.URL(), good.URL()}) {
		t.Errorf("AuthorizationServers = %q", d.AuthorizationServers)
	}

	t.Run("configured issuer", func(t *testing.T) {
		rs, a, b := newSite(t), newSite(t), newSite(t)
		rs.json("/.well-known/oauth-protected-resource/mcp", prmDoc(rs.URL()+"/mcp", a.URL(), b.URL()))
		a.json("/.well-known/oauth-authorization-server", asDoc(a.URL()))
		b.json("/.well-known/oauth-authorization-server", asDoc(b.URL()))
		d, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{Issuer: b.URL()})
		if err != nil {
			t.Fatal(err)
		}
		if d.AS.Issuer != b.URL() {
			t.Errorf("chose %q", d.AS.Issuer)
		}
		wantRequests(t, a)
		_, err = discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{Issuer: "https://other.example.com"})
		if !errors.Is(err, ErrNoAuthServer) || !strings.Contains(err.Error(), "not among") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDiscoverLegacy(t *testing.T) {
	t.Run("metadata at the origin, endpoints elsewhere (2025-03-26-oauth-metadata-backcompat)", func(t *testing.T) {
		rs := newSite(t)
		doc := with(asDoc(rs.URL()),
			"authorization_endpoint", rs.URL()+"/oauth/authorize",
			"token_endpoint", rs.URL()+"/oauth/token",
			"registration_endpoint", rs.URL()+"/oauth/register")
		rs.json("/.well-known/oauth-authorization-server", doc)
		ch := &Challenge{Status: 401}
		d, err := discoverT(t, rs.URL()+"/mcp", ch, DiscoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantRequests(t, rs,
			"GET /.well-known/oauth-protected-resource/mcp",
			"GET /.well-known/oauth-protected-resource",
			"GET /.well-known/oauth-authorization-server")
		want := &Discovery{
			ServerURL: rs.URL() + "/mcp",
			Resource:  rs.URL() + "/mcp",
			Challenge: ch,
			AS: &AuthServer{
				Issuer:                        rs.URL(),
				AuthorizationEndpoint:         rs.URL() + "/oauth/authorize",
				TokenEndpoint:                 rs.URL() + "/oauth/token",
				RegistrationEndpoint:          rs.URL() + "/oauth/register",
				CodeChallengeMethodsSupported: []string{"S256"},
			},
		}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("got %+v / %+v\nwant %+v / %+v", d, d.AS, want, want.AS)
		}
	})
	t.Run("no metadata at all: default endpoints (2025-03-26-oauth-endpoint-fallback)", func(t *testing.T) {
		rs := newSite(t)
		d, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantRequests(t, rs,
			"GET /.well-known/oauth-protected-resource/mcp",
			"GET /.well-known/oauth-protected-resource",
			"GET /.well-known/oauth-authorization-server",
			"GET /.well-known/openid-configuration")
		want := &Discovery{
			ServerURL: rs.URL() + "/mcp",
			Resource:  rs.URL() + "/mcp",
			AS: &AuthServer{
				Issuer:                rs.URL(),
				AuthorizationEndpoint: rs.URL() + "/authorize",
				TokenEndpoint:         rs.URL() + "/token",
				RegistrationEndpoint:  rs.URL() + "/register",
				Legacy:                true,
			},
		}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("got %+v / %+v\nwant %+v / %+v", d, d.AS, want, want.AS)
		}
	})
	t.Run("origin metadata without PKCE is refused, not defaulted", func(t *testing.T) {
		rs := newSite(t)
		rs.json("/.well-known/oauth-authorization-server", with(asDoc(rs.URL()), "code_challenge_methods_supported", nil))
		_, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
		if !errors.Is(err, ErrNoAuthServer) {
			t.Errorf("err = %v", err)
		}
		wantRefused(t, err, "Authorization Code Protection")
	})
}

// TestDiscoverOIDCProviderShape runs discovery against metadata shaped like
// oidc-provider's (testdata), served under a path issuer.
func TestDiscoverOIDCProviderShape(t *testing.T) {
	raw, err := os.ReadFile("testdata/oidc-provider-metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	rs, as := newSite(t), newSite(t)
	issuer := as.URL() + "/oidc"
	as.handle("/.well-known/openid-configuration/oidc", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(strings.ReplaceAll(string(raw), "{{ISSUER}}", issuer)))
	})
	rs.json("/.well-known/oauth-protected-resource/mcp", map[string]any{
		"resource": rs.URL() + "/mcp", "authorization_servers": []string{issuer},
		"scopes_supported": []string{"mcp:tools"}, "bearer_methods_supported": []string{"header"},
	})
	d, err := discoverT(t, rs.URL()+"/mcp", nil, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := &AuthServer{
		Issuer:                            issuer,
		AuthorizationEndpoint:             issuer + "/auth",
		TokenEndpoint:                     issuer + "/token",
		RegistrationEndpoint:              issuer + "/reg",
		RevocationEndpoint:                issuer + "/token/revocation",
		ScopesSupported:                   []string{"openid", "offline_access", "mcp:tools"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_jwt", "client_secret_post", "private_key_jwt", "none"},
		GrantTypesSupported:               []string{"implicit", "authorization_code", "refresh_token"},
		IssParameterSupported:             true,
	}
	if !reflect.DeepEqual(d.AS, want) {
		t.Errorf("AS = %+v\nwant %+v", d.AS, want)
	}
	if !reflect.DeepEqual(d.ScopesSupported, []string{"mcp:tools"}) {
		t.Errorf("ScopesSupported = %q", d.ScopesSupported)
	}
}

// TestDiscoverLoopbackNamedByPublicServer: a server on a public name may not
// send mcpkey to loopback URLs (local services) unless allowed.
func TestDiscoverLoopbackNamedByPublicServer(t *testing.T) {
	as := newSite(t)
	as.json("/.well-known/oauth-authorization-server", asDoc(as.URL()))
	var rsURL string
	rs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/oauth-protected-resource/mcp" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(prmDoc(rsURL+"/mcp", as.URL()))
	}))
	t.Cleanup(rs.Close)
	rsURL = "https://example.com:" + port(t, rs)
	// example.com → 127.0.0.1 stands in for a public server; the client must
	// allow that address to reach it at all.
	hc := NewHTTPClient(HTTPOptions{
		Base:                rs.Client().Transport.(*http.Transport),
		Resolver:            &fakeResolver{addrs: map[string][]string{"example.com": {"127.0.0.1"}}},
		AllowPrivateNetwork: true,
	})
	_, err := Discover(context.Background(), hc, rsURL+"/mcp", nil, DiscoverOptions{})
	wantRefused(t, err, "Server-Side Request Forgery", "issuer "+as.URL()+" points to loopback")
	wantRequests(t, as)

	d, err := Discover(context.Background(), hc, rsURL+"/mcp", nil, DiscoverOptions{AllowPrivateNetwork: true})
	if err != nil {
		t.Fatalf("with AllowPrivateNetwork: %v", err)
	}
	if d.AS.Issuer != as.URL() || d.Resource != rsURL+"/mcp" {
		t.Errorf("got %+v", d)
	}
}
