package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ErrRevocationUnsupported means the authorization server has no
// revocation_endpoint; only local removal is possible.
var ErrRevocationUnsupported = errors.New("authorization server has no revocation endpoint")

// Revoke asks the authorization server to revoke token (RFC 7009), usually
// the refresh token at logout, which ends the whole grant. hint is
// "refresh_token", "access_token" or "". The client authenticates as for the
// token endpoint. Success is HTTP 200 (RFC 7009 §2.2, also for a token the
// server no longer knows); anything else is a *TokenError (503 is transient).
// hc nil means http.DefaultClient.
func Revoke(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, token, hint string) error {
	if token == "" {
		return errors.New("revoke: no token")
	}
	if err := checkClientFor(as, c); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if as.RevocationEndpoint == "" {
		return ErrRevocationUnsupported
	}
	if err := checkEndpointURL("revocation endpoint", as.RevocationEndpoint); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	status, ctype, body, err := postTokenForm(ctx, hc, as.RevocationEndpoint, form, c)
	if err != nil {
		return fmt.Errorf("revoke at %s: %w", as.RevocationEndpoint, err)
	}
	if status == http.StatusOK {
		return nil
	}
	raw, _ := decodeTokenBody(ctype, body)
	return fmt.Errorf("revoke at %s: %w", as.RevocationEndpoint, bodyTokenError(status, raw, []string{token, c.ClientSecret}))
}
