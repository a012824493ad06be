package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemKey(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestParseClientKey(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(p256)
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	for _, tc := range []struct {
		name    string
		pem     []byte
		alg     string
		wantAlg string
		wantErr string
	}{
		{"P-256 derives ES256", pemKey(t, p256), "", "ES256", ""},
		{"P-384 derives ES384", pemKey(t, p384), "", "ES384", ""},
		{"SEC 1 EC key", sec1, "ES256", "ES256", ""},
		{"RSA derives RS256", pemKey(t, rsaKey), "", "RS256", ""},
		{"PKCS #1 RSA with PS256", pkcs1, "PS256", "PS256", ""},
		{"Ed25519 derives EdDSA", pemKey(t, edKey), "", "EdDSA", ""},
		{"alg that does not fit the key", pemKey(t, p256), "RS256", "", "algorithm RS256 does not fit this key (it takes ES256)"},
		{"not PEM", []byte("hunter2"), "", "", "not a PEM private key"},
		{"a public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), "", "", `PEM block "PUBLIC KEY" is not a private key`},
		{"garbage in the block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-bytes")}), "", "", "does not hold a readable private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseClientKey(tc.pem, tc.alg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret-bytes") || strings.Contains(err.Error(), "hunter2") {
					t.Fatal("the error quotes the key material")
				}
				return
			}
			if err != nil || k.Alg != tc.wantAlg {
				t.Fatalf("ParseClientKey = %+v, %v; want alg %s", k, err, tc.wantAlg)
			}
		})
	}
}

// tokenEndpoint serves one token endpoint answer and records the form and
// Authorization header of each request.
func tokenEndpoint(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*AuthServer, *[]*http.Request) {
	t.Helper()
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = append(got, r)
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return &AuthServer{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token"}, &got
}

func okToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"access_token":"at-1","token_type":"Bearer","expires_in":60}`))
}

// TestClientCredentialsPrivateKeyJWT: the client assertion is signed by the
// key, iss = sub = client id, aud = the issuer, a jti, a short exp; the
// resource and scope are sent, no secret.
func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := ParseClientKey(pemKey(t, priv), "")
	if err != nil {
		t.Fatal(err)
	}
	as, got := tokenEndpoint(t, okToken)
	c := &Client{Issuer: as.Issuer, ClientID: "bot", TokenEndpointAuthMethod: AuthPrivateKeyJWT, Key: k}
	ts, err := ClientCredentials(context.Background(), nil, as, c, "https://mcp.example/mcp", []string{"a", "b"})
	if err != nil || ts.AccessToken != "at-1" || ts.RefreshToken != "" {
		t.Fatalf("ClientCredentials = %+v, %v", ts, err)
	}
	r := (*got)[0]
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" || f.Get("resource") != "https://mcp.example/mcp" || f.Get("scope") != "a b" ||
		f.Get("client_assertion_type") != clientAssertionType || f.Get("client_secret") != "" || r.Header.Get("Authorization") != "" {
		t.Fatalf("request form %v, Authorization %q", f, r.Header.Get("Authorization"))
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(f.Get("client_assertion"), claims, func(*jwt.Token) (any, error) { return &priv.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(as.Issuer), jwt.WithIssuer("bot"), jwt.WithSubject("bot"), jwt.WithExpirationRequired()); err != nil {
		t.Fatalf("the client assertion does not verify: %v", err)
	}
	exp, _ := claims.GetExpirationTime()
	if claims["jti"] == "" || time.Until(exp.Time) > assertionLifetime+time.Second {
		t.Errorf("assertion claims %v: want a jti and exp within %s", claims, assertionLifetime)
	}

	// A second grant gets a fresh assertion (jti).
	if _, err := ClientCredentials(context.Background(), nil, as, c, "https://mcp.example/mcp", nil); err != nil {
		t.Fatal(err)
	}
	if (*got)[1].PostForm.Get("client_assertion") == f.Get("client_assertion") {
		t.Error("the client assertion was reused")
	}
}

// TestClientCredentialsBasic: client_secret_basic sends the secret in the
// Authorization header only.
func TestClientCredentialsBasic(t *testing.T) {
	as, got := tokenEndpoint(t, okToken)
	c := &Client{Issuer: as.Issuer, ClientID: "bot", ClientSecret: "s3cret", TokenEndpointAuthMethod: "client_secret_basic"}
	if _, err := ClientCredentials(context.Background(), nil, as, c, "https://mcp.example/mcp", nil); err != nil {
		t.Fatal(err)
	}
	r := (*got)[0]
	id, secret, ok := r.BasicAuth()
	if !ok || id != "bot" || secret != "s3cret" || r.PostForm.Get("client_secret") != "" || r.PostForm.Has("scope") {
		t.Fatalf("basic auth %q %q %v, form %v", id, secret, ok, r.PostForm)
	}
}

// TestJWTBearerRedactsTheAssertion: a server that quotes the assertion and
// the secret back in its error gets them redacted; invalid_grant is
// recognisable (the agent does not retry it).
func TestJWTBearerRedactsTheAssertion(t *testing.T) {
	const assertion = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJl"
	as, got := tokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "bad assertion " + r.PostForm.Get("assertion")})
	})
	c := &Client{Issuer: as.Issuer, ClientID: "workload", TokenEndpointAuthMethod: "none"}
	_, err := JWTBearer(context.Background(), nil, as, c, assertion, "https://mcp.example/mcp", nil)
	if err == nil || !IsInvalidGrant(err) {
		t.Fatalf("err = %v, want invalid_grant", err)
	}
	if strings.Contains(err.Error(), assertion) {
		t.Fatalf("the error quotes the assertion: %v", err)
	}
	f := (*got)[0].PostForm
	if f.Get("grant_type") != GrantTypeJWTBearer || f.Get("assertion") != assertion || f.Get("client_id") != "workload" || f.Get("resource") == "" {
		t.Errorf("request form %v", f)
	}
	if _, err := JWTBearer(context.Background(), nil, as, c, "", "https://mcp.example/mcp", nil); err == nil || len(*got) != 1 {
		t.Error("an empty assertion was sent")
	}
}

// TestExchangeIDJAG: the RFC 8693 request of the MCP enterprise profile,
// and a refusal of anything but an ID-JAG.
func TestExchangeIDJAG(t *testing.T) {
	issued := TokenTypeIDJAG
	as, got := tokenEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"access_token": "jag-1", "issued_token_type": issued, "token_type": "N_A"})
	})
	c := &Client{ClientID: "mcpkey-idp"}
	jag, err := ExchangeIDJAG(context.Background(), nil, as.TokenEndpoint, c, "id-token-1", "https://as.example", "https://mcp.example/mcp", []string{"read"})
	if err != nil || jag != "jag-1" {
		t.Fatalf("ExchangeIDJAG = %q, %v", jag, err)
	}
	f := (*got)[0].PostForm
	want := map[string]string{
		"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "requested_token_type": TokenTypeIDJAG,
		"subject_token": "id-token-1", "subject_token_type": TokenTypeIDToken, "audience": "https://as.example",
		"resource": "https://mcp.example/mcp", "scope": "read", "client_id": "mcpkey-idp",
	}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, f.Get(k), v)
		}
	}
	issued = "urn:ietf:params:oauth:token-type:access_token"
	if _, err := ExchangeIDJAG(context.Background(), nil, as.TokenEndpoint, c, "id-token-1", "https://as.example", "https://mcp.example/mcp", nil); err == nil ||
		!strings.Contains(err.Error(), "not an identity assertion") {
		t.Errorf("an access token instead of an ID-JAG: err = %v", err)
	}
}
