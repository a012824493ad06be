package agent

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// dpopState is the agent's DPoP (RFC 9449) memory: the nonces servers sent,
// per origin, and the servers that refused a key-bound token.
type dpopState struct {
	nonces oauth.Nonces
	// bearerOnly holds the servers (session URLs) that refused a key-bound
	// token: their next sign-ins ask for bearer tokens.
	bearerOnly sync.Map
}

// wantDPoP decides whether a login for t asks for key-bound tokens: the
// login request's choice, else the config's dpop setting when present; else when the resource asks for them
// (its challenge uses the DPoP scheme, or its metadata lists
// dpop_signing_alg_values_supported or dpop_bound_access_tokens_required)
// and its authorization server offers ES256 proofs. A server whose
// challenge offers Bearer only, or that refused a key-bound token before,
// gets bearer tokens. refused: the server refused a key-bound token before
// (dpopState.refused).
func wantDPoP(t target, d *oauth.Discovery, force *bool, refused bool) bool {
	if force != nil {
		return *force // the login's caller decided (mcpkey login --dpop=…)
	}
	if f := t.settings.DPoP; f != nil {
		return *f
	}
	if refused {
		return false
	}
	asks := d.DPoPRequired || len(d.DPoPAlgs) > 0 || (d.Challenge != nil && d.Challenge.DPoP)
	if !asks || d.AS == nil || !slices.Contains(d.AS.DPoPSigningAlgValuesSupported, oauth.DPoPAlg) {
		return false
	}
	return len(d.DPoPAlgs) == 0 || slices.Contains(d.DPoPAlgs, oauth.DPoPAlg)
}

// option is the request option of a login or refresh with key k
// (none for nil: a bearer session).
func (d *dpopState) option(k *oauth.DPoPKey) oauth.RequestOption {
	if k == nil {
		return nil
	}
	return oauth.WithDPoP(k, &d.nonces)
}

// keyFor parses a record's stored key ("" = none).
func keyFor(der string) *oauth.DPoPKey {
	if der == "" {
		return nil
	}
	k, err := oauth.ParseDPoPKey([]byte(der))
	if err != nil {
		return nil
	}
	return k
}

// marshalKey returns k as the record's DPoPKey.
func marshalKey(k *oauth.DPoPKey) (string, error) {
	der, err := k.Marshal()
	if err != nil {
		return "", err
	}
	defer clear(der)
	return string(der), nil
}

// prove attaches a fresh proof for req's method and URL to tok, a key-bound
// session's token. A nonce the caller reports is remembered for the URL's
// origin; without one the last nonce that origin sent is used.
func (d *dpopState) prove(s *session, tok Token, req TokenRequest) (Token, error) {
	if req.DPoPMethod == "" || req.DPoPURL == "" {
		return Token{}, ErrDPoPRequired
	}
	if o := oauth.Origin(req.DPoPURL); o == "" || o != oauth.Origin(tok.Server) {
		// A proof only for the server the token is for: a caller confused
		// by a redirect gets no proof another origin could present.
		return Token{}, fmt.Errorf("%w: dpop_url must be on %s's origin", ErrInvalidRequest, tok.Server)
	}
	k := s.key.Load()
	if k == nil {
		return Token{}, fmt.Errorf("session %s is key-bound but its key is gone; run `mcpkey login` again", tok.Server)
	}
	nonce := req.DPoPNonce
	if nonce != "" {
		d.nonces.Set(req.DPoPURL, nonce)
	} else {
		nonce = d.nonces.Get(req.DPoPURL)
	}
	proof, err := k.Proof(req.DPoPMethod, req.DPoPURL, nonce, tok.AccessToken)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	tok.DPoPProof = proof
	return tok, nil
}

// refused reports whether t's server refused a key-bound token: since
// the agent started, or as the session being replaced (prev) records.
func (d *dpopState) refused(t target, prev *store.SessionRecord) bool {
	_, refused := d.bearerOnly.Load(t.url)
	return refused || (prev != nil && prev.DPoPRefused)
}

// refusedKeyBound notes that r's server refused a key-bound token: the one
// extra sign-in (and later ones) ask for bearer tokens.
func (d *dpopState) refusedKeyBound(server string, err error) error {
	var nl *NeedsLoginError
	if errors.As(err, &nl) {
		d.bearerOnly.Store(server, true)
		nl.Reason = "the server refused a key-bound (DPoP) token; the next sign-in asks for a bearer token"
	}
	return err
}

// adoptKeyLocked keeps s.key in step with the record's stored key.
func (s *session) adoptKeyLocked(old, next string) {
	if next == old && s.key.Load() != nil {
		return
	}
	s.key.Store(keyFor(next))
}
