package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestHydraWorkloadIdentity: workload identity federation against a real
// authorization server, Ory Hydra's RFC 7523 JWT bearer grant with a
// trusted issuer. The agent reads the workload's token from its file at
// every grant: Hydra refuses a reused assertion (jti), so the renewal after
// expiry works only because the rotated file was read again. The go-sdk
// server checks the token by introspection (aud = its resource).
func TestHydraWorkloadIdentity(t *testing.T) {
	h := startHydra(t, 6*time.Second)
	srv := startHydraMCP(t, h, "")
	ctx := deadline(t, 120*time.Second)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const issuer, subject, kid = "https://ci.example.com", "workload-1", "ci-key-1"
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	if err := hydraAdmin(ctx, h.Admin, http.MethodPost, "/admin/trust/grants/jwt-bearer/issuers", map[string]any{
		"issuer": issuer, "subject": subject, "scope": []string{},
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"jwk": map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
			"x": b64(key.PublicKey.X.FillBytes(make([]byte, 32))), "y": b64(key.PublicKey.Y.FillBytes(make([]byte, 32)))},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := hydraAdmin(ctx, h.Admin, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "mcpkey-wif", "client_secret": "e2e-wif-client-secret", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "audience": []string{srv.Resource}, "scope": "",
	}, nil); err != nil {
		t.Fatal(err)
	}
	// workloadToken is what the platform would project into the file.
	workloadToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": issuer, "sub": subject, "aud": h.Issuer + "oauth2/token",
			"iat": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix(), "jti": b64([]byte(time.Now().String())),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dir := t.TempDir()
	tokenFile, secretFile := filepath.Join(dir, "token"), filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("e2e-wif-client-secret"), 0o600)
	first := workloadToken()
	os.WriteFile(tokenFile, []byte(first), 0o600)

	a := startAgent(t, "/bin/false")
	a.configure(t, fmt.Sprintf("[servers.wif]\nurl = %q\nresource_as_audience = true\ngrant = \"jwt_bearer\"\n"+
		"client_id = \"mcpkey-wif\"\nclient_secret_file = %q\nworkload_token_file = %q\n", srv.URL, secretFile, tokenFile))

	tok, err := a.token(ctx, "wif")
	if err != nil {
		t.Fatalf("token.get with the jwt_bearer grant: %v\n%s", err, a.p.stderr.String())
	}
	in := h.introspect(t, tok.AccessToken)
	if !in.Active || !slices.Contains(in.Aud, srv.Resource) || in.Sub != subject {
		t.Fatalf("introspection %+v: want active, aud %s, sub %s", in, srv.Resource, subject)
	}
	a.mustRun(t, 30*time.Second, "probe", "wif", "--no-login")

	// The platform rotates the token; after expiry the agent's renewal
	// must send the new one (the old one's jti is spent at Hydra).
	os.WriteFile(tokenFile, []byte(workloadToken()), 0o600)
	select {
	case <-time.After(time.Until(tok.ExpiresAt)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	next, err := a.token(ctx, "wif")
	if err != nil {
		t.Fatalf("renewal after expiry: %v", err)
	}
	if next.AccessToken == tok.AccessToken || !h.introspect(t, next.AccessToken).Active {
		t.Error("no new active token after expiry")
	}
	if log := a.p.stderr.String(); strings.Contains(log, first) || strings.Contains(log, "e2e-wif-client-secret") {
		t.Error("the agent logged the workload token or the client secret")
	}
}
