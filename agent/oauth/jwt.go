package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// maxJWTLen bounds the token jwtExpiry will decode.
const maxJWTLen = 64 << 10

// JWTExpiry returns the exp claim of a JWS compact-serialized token, and false
// when the token is not such a JWT or has no usable exp.
//
// The signature is NOT verified: the token is opaque to mcpkey and exp is
// only a fallback for a token response without expires_in, used to plan the
// next refresh (or an ID token's renewal). Nothing is trusted on its
// strength.
func JWTExpiry(token string) (time.Time, bool) {
	if len(token) > maxJWTLen {
		return time.Time{}, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 { // a JWE (5 parts) is unreadable; anything else is opaque
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 || f > math.MaxInt32*4 || math.IsNaN(f) {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
