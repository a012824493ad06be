package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// dcrServer is a registration endpoint that records each request body and
// answers with status and body.
type dcrServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	ctypes []string
	status int
	answer string
}

func newDCR(t *testing.T, status int, answer string) *dcrServer {
	t.Helper()
	d := &dcrServer{status: status, answer: answer}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		d.mu.Lock()
		d.bodies = append(d.bodies, m)
		d.ctypes = append(d.ctypes, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(d.status)
		io.WriteString(w, d.answer)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *dcrServer) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.bodies)
}

var fixedNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func now() time.Time { return fixedNow }

const redirect = "http://127.0.0.1/callback"

func register(t *testing.T, as *AuthServer, req RegisterRequest) (*Client, error) {
	t.Helper()
	if req.Now == nil {
		req.Now = now
	}
	return Register(context.Background(), NewHTTPClient(HTTPOptions{}), as, req)
}

func TestRegisterPriority(t *testing.T) {
	dcr := newDCR(t, 201, `{"client_id":"dcr-id","token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/callback"]}`)
	issuer := "https://as.example.com"
	full := &AuthServer{Issuer: issuer, RegistrationEndpoint: dcr.srv.URL + "/register", ClientIDMetadataDocumentSupported: true,
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "none"}}
	stored := &Client{Issuer: issuer, ClientID: "stored-id", TokenEndpointAuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1:5000/callback"}, Source: SourceDCR, RegisteredAt: fixedNow.Add(-time.Hour)}
	const cimd = "https://mcpkey.example/client.json"

	tests := []struct {
		name     string
		as       *AuthServer
		req      RegisterRequest
		want     *Client
		wantDCR  int
		wantErr  error
		errMatch string
	}{
		{
			name: "pre-registered beats everything",
			as:   full,
			req:  RegisterRequest{ClientID: "pre", ClientSecret: "s3cret", Existing: stored, ClientMetadataURL: cimd, RedirectURI: redirect},
			want: &Client{Issuer: issuer, ClientID: "pre", ClientSecret: "s3cret", TokenEndpointAuthMethod: "client_secret_post",
				RedirectURIs: []string{redirect}, Source: SourcePreregistered, RegisteredAt: fixedNow},
		},
		{
			name: "stored registration for this issuer beats CIMD and DCR",
			as:   full,
			req:  RegisterRequest{Existing: stored, ClientMetadataURL: "", RedirectURI: redirect},
			want: stored,
		},
		{
			name:    "stored registration for another issuer is never used",
			as:      full,
			req:     RegisterRequest{Existing: &Client{Issuer: "https://old-as.example.com", ClientID: "old"}, RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: "dcr-id", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceDCR, RegisteredAt: fixedNow},
			wantDCR: 1,
		},
		{
			name:    "stored issuer differing by a trailing slash is another issuer",
			as:      full,
			req:     RegisterRequest{Existing: &Client{Issuer: issuer + "/", ClientID: "old"}, RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: "dcr-id", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceDCR, RegisteredAt: fixedNow},
			wantDCR: 1,
		},
		{
			name: "stored registration with an expired secret is replaced",
			as:   full,
			req: RegisterRequest{Existing: &Client{Issuer: issuer, ClientID: "old", ClientSecret: "x",
				ClientSecretExpiresAt: fixedNow.Add(-time.Second).Unix()}, RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: "dcr-id", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceDCR, RegisteredAt: fixedNow},
			wantDCR: 1,
		},
		{
			name: "stored registration with another redirect path is replaced",
			as:   full,
			req: RegisterRequest{Existing: &Client{Issuer: issuer, ClientID: "old", RedirectURIs: []string{"http://127.0.0.1/other"}},
				RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: "dcr-id", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceDCR, RegisteredAt: fixedNow},
			wantDCR: 1,
		},
		{
			name: "CIMD when configured and advertised",
			as:   full,
			req:  RegisterRequest{ClientMetadataURL: cimd, RedirectURI: redirect},
			want: &Client{Issuer: issuer, ClientID: cimd, TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect},
				Source: SourceCIMD, RegisteredAt: fixedNow},
		},
		{
			name:    "CIMD configured but not advertised: DCR",
			as:      &AuthServer{Issuer: issuer, RegistrationEndpoint: dcr.srv.URL + "/register"},
			req:     RegisterRequest{ClientMetadataURL: cimd, RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: "dcr-id", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceDCR, RegisteredAt: fixedNow},
			wantDCR: 1,
		},
		{
			name:    "stored CIMD client with another URL is not kept",
			as:      full,
			req:     RegisterRequest{Existing: &Client{Issuer: issuer, ClientID: "https://old.example/c.json", Source: SourceCIMD}, ClientMetadataURL: cimd, RedirectURI: redirect},
			want:    &Client{Issuer: issuer, ClientID: cimd, TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect}, Source: SourceCIMD, RegisteredAt: fixedNow},
			wantDCR: 0,
		},
		{
			name:     "CIMD URL without a path",
			as:       full,
			req:      RegisterRequest{ClientMetadataURL: "https://mcpkey.example", RedirectURI: redirect},
			errMatch: "must have a path",
		},
		{
			name:     "CIMD URL over http",
			as:       full,
			req:      RegisterRequest{ClientMetadataURL: "http://mcpkey.example/c.json", RedirectURI: redirect},
			errMatch: "must be an https URL",
		},
		{
			name:     "CIMD URL with dot segments",
			as:       full,
			req:      RegisterRequest{ClientMetadataURL: "https://mcpkey.example/a/../c.json", RedirectURI: redirect},
			errMatch: "must not have . or .. segments",
		},
		{
			name:     "nothing available",
			as:       &AuthServer{Issuer: issuer},
			req:      RegisterRequest{ClientMetadataURL: cimd, RedirectURI: redirect},
			wantErr:  ErrNoRegistration,
			errMatch: "hint: pass --client-id",
		},
		{
			name:     "pre-registered for another issuer (SEP-2352)",
			as:       full,
			req:      RegisterRequest{ClientID: "pre", PreregisteredIssuer: "https://old-as.example.com", RedirectURI: redirect},
			errMatch: "belongs to issuer https://old-as.example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dcr.calls()
			got, err := register(t, tt.as, tt.req)
			if tt.errMatch != "" || tt.wantErr != nil {
				if err == nil || !strings.Contains(err.Error(), tt.errMatch) {
					t.Fatalf("err = %v, want %q", err, tt.errMatch)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want errors.Is %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Error("secret in error")
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if n := dcr.calls() - before; n != tt.wantDCR {
				t.Errorf("DCR requests = %d, want %d", n, tt.wantDCR)
			}
		})
	}
}

func TestRegisterReturnsCopyOfExisting(t *testing.T) {
	stored := &Client{Issuer: "https://as", ClientID: "id", RedirectURIs: []string{redirect}}
	got, err := register(t, &AuthServer{Issuer: "https://as"}, RegisterRequest{Existing: stored, RedirectURI: "http://127.0.0.1:4321/callback"})
	if err != nil {
		t.Fatal(err)
	}
	if got == stored {
		t.Fatal("returned the caller's pointer")
	}
	got.RedirectURIs[0] = "x"
	if stored.RedirectURIs[0] != redirect {
		t.Error("returned client aliases the stored one")
	}
}

func TestRegisterDCRRequestAndAnswer(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		want   Client
	}{
		{
			name:   "AS chooses a secret and client_secret_post",
			answer: `{"client_id":"c1","client_secret":"sek","client_secret_expires_at":1900000000,"token_endpoint_auth_method":"client_secret_post","redirect_uris":["http://127.0.0.1/callback"],"grant_types":["authorization_code"]}`,
			want: Client{ClientID: "c1", ClientSecret: "sek", ClientSecretExpiresAt: 1900000000, TokenEndpointAuthMethod: "client_secret_post",
				RedirectURIs: []string{redirect}},
		},
		{
			name:   "secret without a method means client_secret_basic (RFC 7591 §2)",
			answer: `{"client_id":"c2","client_secret":"sek"}`,
			want:   Client{ClientID: "c2", ClientSecret: "sek", TokenEndpointAuthMethod: "client_secret_basic", RedirectURIs: []string{redirect}},
		},
		{
			name:   "public client",
			answer: `{"client_id":"c3","redirect_uris":["http://127.0.0.1/callback","http://[::1]/callback"]}`,
			want:   Client{ClientID: "c3", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirect, "http://[::1]/callback"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dcr := newDCR(t, 201, tt.answer)
			as := &AuthServer{Issuer: "https://as.example.com/t", RegistrationEndpoint: dcr.srv.URL + "/reg"}
			got, err := register(t, as, RegisterRequest{RedirectURI: redirect, ClientName: "mcpkey on laptop", Scopes: []string{"mcp:tools", "offline_access"}})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Issuer, want.Source, want.RegisteredAt, want.Scope = as.Issuer, SourceDCR, fixedNow, "mcp:tools offline_access"
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
			wantBody := map[string]any{
				"redirect_uris":              []any{redirect},
				"token_endpoint_auth_method": "none",
				"grant_types":                []any{"authorization_code", "refresh_token"},
				"response_types":             []any{"code"},
				"client_name":                "mcpkey on laptop",
				"scope":                      "mcp:tools offline_access",
				"application_type":           "native",
			}
			if !reflect.DeepEqual(dcr.bodies, []map[string]any{wantBody}) {
				t.Errorf("request body = %v\nwant %v", dcr.bodies, wantBody)
			}
			if !reflect.DeepEqual(dcr.ctypes, []string{"POST /reg application/json"}) {
				t.Errorf("request = %q", dcr.ctypes)
			}
		})
	}

	t.Run("defaults: client name, no scope", func(t *testing.T) {
		dcr := newDCR(t, 200, `{"client_id":"c"}`)
		_, err := register(t, &AuthServer{Issuer: "https://as", RegistrationEndpoint: dcr.srv.URL}, RegisterRequest{RedirectURI: "http://[::1]/cb"})
		if err != nil {
			t.Fatal(err)
		}
		b := dcr.bodies[0]
		if b["client_name"] != "mcpkey" || b["application_type"] != "native" {
			t.Errorf("body = %v", b)
		}
		if _, ok := b["scope"]; ok {
			t.Errorf("empty scope sent: %v", b)
		}
	})
}

func TestRegisterDCRErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		answer string
		check  func(t *testing.T, err error)
	}{
		{"RFC 7591 error answer", 400, `{"error":"invalid_redirect_uri","error_description":"loopback\nnot allowed\u0007 here"}`,
			func(t *testing.T, err error) {
				var re *RegistrationError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want *RegistrationError", err)
				}
				if re.Code != "invalid_redirect_uri" || re.Description != "loopback not allowed  here" || re.Status != 400 || !strings.HasSuffix(re.URL, "/reg") {
					t.Errorf("got %+v", re)
				}
				if !strings.Contains(err.Error(), "invalid_redirect_uri: loopback") {
					t.Errorf("message = %q", err)
				}
			}},
		{"server error without JSON", 503, `<html>down</html>`,
			func(t *testing.T, err error) {
				var re *RegistrationError
				if !errors.As(err, &re) || re.Status != 503 || re.Code != "" {
					t.Fatalf("err = %v", err)
				}
			}},
		{"success without client_id", 201, `{"client_secret":"topsecret"}`,
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "no client_id") || strings.Contains(err.Error(), "topsecret") {
					t.Fatalf("err = %v", err)
				}
			}},
		{"success that is not JSON never quotes the body", 201, `{"client_id":"x","client_secret":"topsecret"`,
			func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "not valid JSON") || strings.Contains(err.Error(), "topsecret") {
					t.Fatalf("err = %v", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dcr := newDCR(t, tt.status, tt.answer)
			_, err := register(t, &AuthServer{Issuer: "https://as", RegistrationEndpoint: dcr.srv.URL + "/reg"}, RegisterRequest{RedirectURI: redirect})
			tt.check(t, err)
		})
	}
	t.Run("registration endpoint refused by the hardened client", func(t *testing.T) {
		_, err := register(t, &AuthServer{Issuer: "https://as", RegistrationEndpoint: "http://as.example.com/reg"}, RegisterRequest{RedirectURI: redirect})
		policyErr(t, err)
	})
}

func TestPreregisteredAuthMethod(t *testing.T) {
	tests := []struct {
		supported []string
		secret    bool
		want      string
	}{
		{nil, true, "client_secret_basic"},
		{[]string{"client_secret_basic", "client_secret_post"}, true, "client_secret_basic"},
		{[]string{"client_secret_post"}, true, "client_secret_post"},
		{[]string{"none"}, true, "none"},
		{[]string{"client_secret_basic"}, false, "none"},
		{nil, false, "none"},
	}
	for _, tt := range tests {
		if got := preregisteredAuthMethod(tt.supported, tt.secret); got != tt.want {
			t.Errorf("preregisteredAuthMethod(%q, %v) = %q, want %q", tt.supported, tt.secret, got, tt.want)
		}
	}
}

func TestApplicationType(t *testing.T) {
	for uri, want := range map[string]string{
		"http://127.0.0.1/callback": "native", "http://[::1]:8080/cb": "native", "http://localhost/cb": "native",
		"com.example.app:/cb": "native", "https://app.example.com/cb": "web",
	} {
		if got := applicationType(uri); got != want {
			t.Errorf("applicationType(%q) = %q, want %q", uri, got, want)
		}
	}
}

// TestRegistrationUpdateStaysOnOrigin: a registration_client_uri on another
// origin than the registration endpoint never gets the registration access
// token; the login registers again instead.
func TestRegistrationUpdateStaysOnOrigin(t *testing.T) {
	elsewhere := newDCR(t, 200, `{"client_id":"old"}`)
	dcr := newDCR(t, 201, `{"client_id":"new"}`)
	as := &AuthServer{Issuer: "https://as.example.com", RegistrationEndpoint: dcr.srv.URL + "/reg"}
	existing := &Client{Issuer: as.Issuer, ClientID: "old", Source: SourceDCR, Scope: "a", RedirectURIs: []string{redirect},
		RegistrationClientURI: elsewhere.srv.URL + "/reg/old", RegistrationAccessToken: "rat"}
	var progress []string
	got, err := register(t, as, RegisterRequest{Existing: existing, RedirectURI: redirect, Scopes: []string{"a", "b"},
		Progress: func(m string) { progress = append(progress, m) }})
	if err != nil || got.ClientID != "new" || got.Scope != "a b" {
		t.Fatalf("got %+v, %v; want a new registration with scope \"a b\"", got, err)
	}
	if elsewhere.calls() != 0 || dcr.calls() != 1 {
		t.Errorf("calls: other origin %d, registration endpoint %d", elsewhere.calls(), dcr.calls())
	}
	if len(progress) != 2 || !strings.Contains(progress[1], "registering with https://as.example.com again (updating the registration failed: registration_client_uri is not on the registration endpoint's origin)") {
		t.Errorf("progress = %q", progress)
	}
}

// TestRegistrationUpdateErrorRedactsToken: an update refused with a
// description that echoes the registration access token does not carry it
// into the error (which reaches progress lines and logs).
func TestRegistrationUpdateErrorRedactsToken(t *testing.T) {
	const rat = "rat-SECRET-registration-token"
	dcr := newDCR(t, 400, `{"error":"invalid_client_metadata","error_description":"bad token `+rat+`"}`)
	as := &AuthServer{Issuer: "https://as.example.com", RegistrationEndpoint: dcr.srv.URL + "/reg"}
	e := &Client{Issuer: as.Issuer, ClientID: "old", Source: SourceDCR, RegistrationClientURI: dcr.srv.URL + "/reg/old", RegistrationAccessToken: rat}
	_, err := updateDCR(context.Background(), NewHTTPClient(HTTPOptions{}), as, e, RegisterRequest{RedirectURI: redirect, Scopes: []string{"a"}}, fixedNow)
	if err == nil || strings.Contains(err.Error(), rat) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("err = %v", err)
	}
	if body := dcr.bodies[0]; body["client_id"] != "old" || body["scope"] != "a" || dcr.ctypes[0] != "PUT /reg/old application/json" {
		t.Errorf("update request = %s %v", dcr.ctypes[0], body)
	}
}
