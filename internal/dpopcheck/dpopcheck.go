// Package dpopcheck verifies DPoP proofs (RFC 9449 §4.3) the way an
// authorization or resource server does: the test authorization server
// (agent/oauth/oauthtest) and the e2e MCP server (e2e/mcpserver) use it to
// hold mcpkey's proofs to the RFC. mcpkey itself only signs proofs.
//
// Signatures are checked with golang-jwt; only ES256 over P-256 is
// accepted, the one algorithm mcpkey signs with.
package dpopcheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpkey/mcpkey/agent/oauth"
)

// ErrUseNonce: the proof lacks the server's current nonce (or has a stale
// one); answer use_dpop_nonce with a DPoP-Nonce header.
var ErrUseNonce = errors.New("use_dpop_nonce")

// Checker checks proofs and remembers their jti, refusing a replay.
type Checker struct {
	// Nonce, when set, must be the proof's nonce claim. Set it before the
	// first Check; later, Rotate changes it.
	Nonce string
	// Window is how far iat may be from now (0 = 60 s).
	Window time.Duration

	mu       sync.Mutex // guards seen, Nonce after the first Check, and previous
	seen     map[string]time.Time
	previous string // the nonce before the last Rotate, still accepted
}

// CurrentNonce returns the nonce proofs must carry (the DPoP-Nonce header
// value of a challenge).
func (c *Checker) CurrentNonce() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nonce
}

// Rotate replaces the nonce with a fresh one and returns it, as a server
// does on any response (RFC 9449 §9: it sends the new one in DPoP-Nonce).
// Proofs with the one before are still accepted, as servers do so that
// requests in flight during a rotation are not refused; older ones answer
// ErrUseNonce.
func (c *Checker) Rotate() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.previous, c.Nonce = c.Nonce, rand.Text()
	return c.Nonce
}

// Proof is what a checked proof said.
type Proof struct {
	JKT string // thumbprint of the proof's key
	JTI string
}

// Check verifies proof for a request of method to rawURL presenting
// accessToken ("" for a token request: then ath must be absent). jkt, when
// not "", is the key the token is bound to (its cnf.jkt).
func (c *Checker) Check(proof, method, rawURL, accessToken, jkt string) (Proof, error) {
	if proof == "" {
		return Proof{}, errors.New("no DPoP proof")
	}
	var pub *ecdsa.PublicKey
	var x, y string
	tok, err := jwt.Parse(proof, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != "dpop+jwt" {
			return nil, errors.New("typ is not dpop+jwt")
		}
		jwk, _ := t.Header["jwk"].(map[string]any)
		if jwk == nil || jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk["d"] != nil {
			return nil, errors.New("jwk is not a public P-256 key")
		}
		x, _ = jwk["x"].(string)
		y, _ = jwk["y"].(string)
		bx, err1 := base64.RawURLEncoding.DecodeString(x)
		by, err2 := base64.RawURLEncoding.DecodeString(y)
		if err1 != nil || err2 != nil || len(bx) != 32 || len(by) != 32 {
			return nil, errors.New("bad jwk coordinates")
		}
		pub = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(bx), Y: new(big.Int).SetBytes(by)}
		return pub, nil
	}, jwt.WithValidMethods([]string{oauth.DPoPAlg}), jwt.WithoutClaimsValidation())
	if err != nil {
		return Proof{}, fmt.Errorf("bad DPoP proof: %w", err)
	}
	cl, _ := tok.Claims.(jwt.MapClaims)
	str := func(k string) string { v, _ := cl[k].(string); return v }
	htu, err := oauth.HTU(rawURL)
	if err != nil {
		return Proof{}, err
	}
	switch {
	case str("htm") != method:
		return Proof{}, fmt.Errorf("htm %q is not %s", str("htm"), method)
	case str("htu") != htu:
		return Proof{}, fmt.Errorf("htu %q is not %s", str("htu"), htu)
	case str("jti") == "":
		return Proof{}, errors.New("no jti")
	}
	iat, ok := cl["iat"].(float64)
	window := c.Window
	if window == 0 {
		window = time.Minute
	}
	now := time.Now()
	if !ok || now.Sub(time.Unix(int64(iat), 0)).Abs() > window {
		return Proof{}, errors.New("iat outside the accepted window")
	}
	if accessToken != "" && !equal(str("ath"), oauth.ATH(accessToken)) {
		return Proof{}, errors.New("ath does not match the access token")
	}
	if accessToken == "" && str("ath") != "" {
		return Proof{}, errors.New("ath in a token request")
	}
	p := Proof{JKT: oauth.ThumbprintP256(x, y), JTI: str("jti")}
	if jkt != "" && !equal(p.JKT, jkt) {
		return Proof{}, errors.New("the proof's key is not the one the token is bound to (cnf.jkt)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := str("nonce"); c.Nonce != "" && !equal(n, c.Nonce) && (c.previous == "" || !equal(n, c.previous)) {
		return Proof{}, ErrUseNonce
	}
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	for j, at := range c.seen {
		if now.Sub(at) > 2*window {
			delete(c.seen, j)
		}
	}
	if _, dup := c.seen[p.JTI]; dup {
		return Proof{}, errors.New("proof replayed (jti seen before)")
	}
	c.seen[p.JTI] = now
	return p, nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
