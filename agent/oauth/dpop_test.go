package oauth_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/internal/dpopcheck"
)

// TestThumbprintRFC9449: the JWK of RFC 9449 §4.1's example proof has the
// cnf.jkt of its §6.1 example token.
func TestThumbprintRFC9449(t *testing.T) {
	got := oauth.ThumbprintP256("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA")
	if want := "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"; got != want {
		t.Errorf("thumbprint = %s, want %s", got, want)
	}
}

func claimsOf(t *testing.T, jws string) (hdr, cl map[string]any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("proof is not a compact JWS: %d parts", len(parts))
	}
	for i, v := range []*map[string]any{&hdr, &cl} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, cl
}

// TestDPoPProof: a proof verifies with its embedded public key, binds the
// method, the URL without query and fragment, the token (ath) and the
// nonce; every proof has its own jti; the JWK carries no private part.
func TestDPoPProof(t *testing.T) {
	k, err := oauth.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := k.Proof("post", "https://mcp.example.com/mcp?x=1#frag", "n-1", "the-token")
	if err != nil {
		t.Fatal(err)
	}
	var c dpopcheck.Checker
	got, err := c.Check(p1, "POST", "https://mcp.example.com/mcp", "the-token", k.Thumbprint())
	if err != nil {
		t.Fatalf("proof refused: %v", err)
	}
	if got.JKT != k.Thumbprint() {
		t.Errorf("jkt = %s, want %s", got.JKT, k.Thumbprint())
	}
	hdr, cl := claimsOf(t, p1)
	if hdr["typ"] != "dpop+jwt" || hdr["alg"] != "ES256" {
		t.Errorf("header = %v", hdr)
	}
	if jwk, _ := hdr["jwk"].(map[string]any); jwk["d"] != nil || jwk["kty"] != "EC" {
		t.Errorf("jwk = %v", jwk)
	}
	if cl["htu"] != "https://mcp.example.com/mcp" || cl["htm"] != "POST" || cl["nonce"] != "n-1" || cl["ath"] != oauth.ATH("the-token") {
		t.Errorf("claims = %v", cl)
	}
	if _, err := c.Check(p1, "POST", "https://mcp.example.com/mcp", "the-token", ""); err == nil {
		t.Error("a replayed proof was accepted")
	}
	p2, _ := k.Proof("POST", "https://mcp.example.com/mcp", "", "the-token")
	if _, c2 := claimsOf(t, p2); c2["jti"] == cl["jti"] || c2["nonce"] != nil {
		t.Errorf("second proof: jti %v (first %v), nonce %v", c2["jti"], cl["jti"], c2["nonce"])
	}
	if _, err := c.Check(p2, "POST", "https://mcp.example.com/mcp", "another-token", ""); err == nil {
		t.Error("a proof for another token (ath) was accepted")
	}
	if _, err := k.Proof("POST", "mcp.example.com/mcp", "", ""); err == nil {
		t.Error("a relative URL was accepted")
	}
}

// TestDPoPKeyRoundTrip: a stored key reads back as the same key; bad bytes
// are refused without echoing them.
func TestDPoPKeyRoundTrip(t *testing.T) {
	k, _ := oauth.NewDPoPKey()
	der, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := oauth.ParseDPoPKey(der)
	if err != nil || k2.Thumbprint() != k.Thumbprint() {
		t.Fatalf("round trip: %v, %v", k2, err)
	}
	_, err = oauth.ParseDPoPKey([]byte("SECRETBYTES"))
	if err == nil || strings.Contains(err.Error(), "SECRETBYTES") {
		t.Errorf("bad key: %v", err)
	}
}

// TestRefreshDPoPNonce: a refresh carries a proof; the AS's use_dpop_nonce
// answer is retried once with its nonce, which is remembered: the next
// refresh sends it at once. The new token is bound to the same key.
func TestRefreshDPoPNonce(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{DPoP: true, ASNonce: "as-nonce-1"})
	c := publicClient(s)
	k, _ := oauth.NewDPoPKey()
	_, rt := s.GrantBound(c.ClientID, []string{"read"}, k.Thumbprint())
	var nonces oauth.Nonces
	ts, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, []string{"read"}, oauth.WithDPoP(k, &nonces))
	if err != nil {
		t.Fatalf("refresh: %v (proof errors %v)", err, s.ProofErrors())
	}
	if ts.TokenType != "DPoP" || s.BoundKey(ts.AccessToken) != k.Thumbprint() {
		t.Errorf("token type %s, bound to %q, want DPoP bound to %s", ts.TokenType, s.BoundKey(ts.AccessToken), k.Thumbprint())
	}
	if n := len(s.TokenRequests()); n != 2 {
		t.Errorf("%d token requests, want 2 (use_dpop_nonce, then the retry)", n)
	}
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, ts.RefreshToken, []string{"read"}, oauth.WithDPoP(k, &nonces)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.TokenRequests()); n != 3 {
		t.Errorf("%d token requests, want 3: the remembered nonce went with the second refresh", n)
	}
}

// TestRefreshBoundGrantNeedsTheKey: a key-bound refresh token is useless
// without a proof from its key.
func TestRefreshBoundGrantNeedsTheKey(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{DPoP: true})
	c := publicClient(s)
	k, _ := oauth.NewDPoPKey()
	other, _ := oauth.NewDPoPKey()
	_, rt := s.GrantBound(c.ClientID, []string{"read"}, k.Thumbprint())
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, []string{"read"}); err == nil {
		t.Error("refresh without a proof succeeded")
	}
	_, rt = s.GrantBound(c.ClientID, []string{"read"}, k.Thumbprint())
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, []string{"read"}, oauth.WithDPoP(other, nil)); err == nil {
		t.Error("refresh with another key's proof succeeded")
	}
}

// TestChallengeDPoPScheme: a DPoP challenge is read (resource_metadata)
// and flagged; a Bearer-only one is not flagged.
func TestChallengeDPoPScheme(t *testing.T) {
	h := map[string][]string{"Www-Authenticate": {`DPoP algs="ES256", resource_metadata="https://x/prm"`}}
	ch, err := oauth.ParseChallenge(401, h)
	if err != nil || !ch.DPoP || ch.ResourceMetadata != "https://x/prm" {
		t.Errorf("DPoP challenge = %+v, %v", ch, err)
	}
	h = map[string][]string{"Www-Authenticate": {`Bearer resource_metadata="https://x/prm", DPoP algs="ES256"`}}
	if ch, _ := oauth.ParseChallenge(401, h); !ch.DPoP || ch.ResourceMetadata != "https://x/prm" {
		t.Errorf("Bearer+DPoP challenge = %+v", ch)
	}
	h = map[string][]string{"Www-Authenticate": {`Bearer resource_metadata="https://x/prm"`}}
	if ch, _ := oauth.ParseChallenge(401, h); ch.DPoP {
		t.Errorf("Bearer challenge flagged DPoP: %+v", ch)
	}
}

// BenchmarkDPoPProof is the cost of one proof alone (ES256 signature,
// claims, encoding): what a key-bound token.get adds.
func BenchmarkDPoPProof(b *testing.B) {
	k, _ := oauth.NewDPoPKey()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Proof("POST", "https://mcp.example.com/mcp", "nonce", "token"); err != nil {
			b.Fatal(err)
		}
	}
}
