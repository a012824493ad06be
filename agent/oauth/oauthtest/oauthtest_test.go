package oauthtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

func getJSON(t *testing.T, url string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

func TestDiscoveryDocuments(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{IssuerPath: "/tenant", ScopesSupported: []string{"mcp"}, IssParameterSupported: true, ChallengeScope: "mcp"})
	for _, u := range []string{s.PRMURL, s.URL + "/.well-known/oauth-protected-resource"} {
		st, m, _ := getJSON(t, u)
		if st != 200 || m["resource"] != s.Resource || m["authorization_servers"].([]any)[0] != s.Issuer {
			t.Errorf("%s: %d %v", u, st, m)
		}
	}
	st, m, _ := getJSON(t, s.URL+"/.well-known/oauth-authorization-server/tenant")
	if st != 200 || m["issuer"] != s.Issuer || m["token_endpoint"] != s.Issuer+"/token" ||
		m["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("metadata: %d %v", st, m)
	}
	as := s.AuthServer()
	if as.Issuer != s.Issuer || as.CodeChallengeMethodsSupported[0] != "S256" || as.RegistrationEndpoint == "" {
		t.Errorf("AuthServer = %+v", as)
	}
	st, _, h := getJSON(t, s.MCPURL)
	want := `Bearer resource_metadata="` + s.PRMURL + `", scope="mcp"`
	if st != 401 || h.Get("WWW-Authenticate") != want {
		t.Errorf("mcp: %d %q, want %q", st, h.Get("WWW-Authenticate"), want)
	}
}

func TestResourceChecksTokens(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := oauthtest.New(t, oauthtest.Options{Now: clock, AccessTokenTTL: time.Minute, RequiredScopes: []string{"write"}})
	s.AddClient(oauthtest.Client{ID: "app"})
	call := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.MCPURL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	good, _ := s.Grant("app", []string{"write"})
	if st, _ := call(good); st != 200 {
		t.Errorf("valid token: %d", st)
	}
	weak, _ := s.Grant("app", []string{"read"})
	if st, h := call(weak); st != 403 || !strings.Contains(h, `error="insufficient_scope"`) {
		t.Errorf("weak token: %d %s", st, h)
	}
	if st, h := call(good + "x"); st != 401 || !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("forged token: %d %s", st, h)
	}
	now = now.Add(time.Minute)
	if st, _ := call(good); st != 401 {
		t.Errorf("expired token: %d", st)
	}
}

func TestRegistrationIsRecorded(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	body := `{"redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none","application_type":"native"}`
	resp, err := http.Post(s.Issuer+"/register", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 201 || m["client_id"] == "" || m["client_secret"] != nil {
		t.Errorf("register: %d %v", resp.StatusCode, m)
	}
	if r := s.Registrations(); len(r) != 1 || r[0]["application_type"] != "native" {
		t.Errorf("Registrations = %v", r)
	}
	if s.Requests("/register") != 1 {
		t.Errorf("Requests = %d", s.Requests("/register"))
	}
}
