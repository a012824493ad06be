package oauth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpkey/mcpkey/agent/internal/wipe"
)

// maxTokenResponse caps a token, revocation or device endpoint answer.
const maxTokenResponse = 1 << 20

// TokenError is an OAuth error answer from a token, revocation or device
// authorization endpoint (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8628 §3.5).
// Description comes from the server: it is sanitized and length-capped and
// never holds token material sent in the request.
type TokenError struct {
	Status      int    // HTTP status (0 when the error was synthesized locally)
	Code        string // "invalid_grant", "invalid_client", …; "" if the body had none
	Description string // error_description, sanitized
}

func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("authorization server answered")
	if e.Status != 0 {
		b.WriteString(" " + strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// ResponseError is a token endpoint answer that is not OAuth at all: a
// non-2xx status without an error code (a proxy's or web server's page), or
// a 2xx answer that is not a token response (HTML, "{}"). Nothing was
// rejected: the credentials sent are as good as before, so a refresh that
// gets one keeps the session and tries again later.
type ResponseError struct {
	Endpoint    string // "token endpoint"
	Status      int
	ContentType string // media type only, sanitized; "" when none was sent
	Why         string // "not an OAuth response", "no access_token", …
}

func (e *ResponseError) Error() string {
	ct := cmp.Or(e.ContentType, "no content type")
	return fmt.Sprintf("%s answered HTTP %d with %s, %s", e.Endpoint, e.Status, ct, e.Why)
}

func responseError(status int, contentType, why string) *ResponseError {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = contentType
	}
	return &ResponseError{Endpoint: "token endpoint", Status: status, ContentType: sanitizeRemote(mt, maxErrCodeLen), Why: why}
}

// EndsGrant reports whether a refresh error means the grant cannot be used
// again: invalid_grant (the refresh token is dead) or a client the server
// does not accept (IsInvalidClient). Every other failure (network, 5xx, a
// page that is not an OAuth answer, other OAuth error codes) leaves the
// refresh token as good as it was.
func EndsGrant(err error) bool {
	return IsInvalidGrant(err) || IsInvalidClient(err)
}

// tokenErrorFrom finds a *TokenError in err's chain, mapping an
// *oauth2.RetrieveError into one.
func tokenErrorFrom(err error) (*TokenError, bool) {
	var te *TokenError
	if errors.As(err, &te) {
		return te, true
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return retrieveToTokenError(re), true
	}
	return nil, false
}

func retrieveToTokenError(re *oauth2.RetrieveError, secrets ...string) *TokenError {
	te := &TokenError{
		Code:        sanitizeRemote(re.ErrorCode, maxErrCodeLen),
		Description: sanitizeRemote(redactSecrets(re.ErrorDescription, secrets), maxErrDescLen),
	}
	if re.Response != nil {
		te.Status = re.Response.StatusCode
	}
	return te
}

// IsInvalidGrant reports whether err is an invalid_grant answer: the refresh
// token, code or device code is dead. For a refresh this ends the session's
// grant (after re-reading the store). A code redemption rejected for a
// redirect_uri mismatch is also invalid_grant; check IsInvalidClient first.
func IsInvalidGrant(err error) bool {
	te, ok := tokenErrorFrom(err)
	return ok && te.Code == "invalid_grant"
}

// IsInvalidClient reports whether err says the client registration is not
// usable: invalid_client, unauthorized_client, invalid_redirect_uri, or an
// invalid_request / invalid_grant whose description blames the redirect URI.
// Such an answer warrants one re-registration. It also recognizes an
// *AuthorizeError from the authorization endpoint.
func IsInvalidClient(err error) bool {
	var code, desc string
	if te, ok := tokenErrorFrom(err); ok {
		code, desc = te.Code, te.Description
	} else if ae := (*AuthorizeError)(nil); errors.As(err, &ae) {
		code, desc = ae.Code, ae.Description
	} else {
		return false
	}
	switch code {
	case "invalid_client", "unauthorized_client", "invalid_redirect_uri":
		return true
	case "invalid_request", "invalid_grant":
		d := strings.ToLower(desc)
		return strings.Contains(d, "redirect_uri") || strings.Contains(d, "redirect uri")
	}
	return false
}

// IsTransient reports whether err is worth retrying later with the same
// credentials: a network error or timeout, an HTTP 5xx or 429, or a
// temporarily_unavailable / server_error answer. Credentials must never be
// deleted for a transient error.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var re *ResponseError
	if errors.As(err, &re) {
		return re.Status >= 500 || re.Status == http.StatusTooManyRequests || re.Status == http.StatusRequestTimeout
	}
	if te, ok := tokenErrorFrom(err); ok {
		return te.Status >= 500 || te.Status == http.StatusTooManyRequests ||
			te.Code == "temporarily_unavailable" || te.Code == "server_error"
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Refresh redeems refreshToken at the authorization server's token endpoint
// (RFC 6749 §6) and sends resource verbatim (RFC 8707 §2.2).
//
// It is hand-written because x/oauth2's tokenRefresher cannot send extra
// parameters such as resource (golang/oauth2#521, golang/go#61594), and it
// keeps the rotated refresh token in memory only.
//
// scopes are the session's scopes: sent as scope when non-empty, and taken as
// the granted scopes when the answer has none. The result's RefreshToken is ""
// when the server did not rotate it: the caller then keeps the old one. A
// rotated refresh token must be persisted before the new access token is
// used, since the old one is now spent. hc nil means http.DefaultClient.
// opts add parameters (WithAudience).
func Refresh(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, resource, refreshToken string, scopes []string, opts ...RequestOption) (*TokenSet, error) {
	if refreshToken == "" {
		return nil, errors.New("refresh: no refresh token")
	}
	if resource == "" {
		return nil, errors.New("refresh: no resource")
	}
	if err := checkClientFor(as, c); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if err := checkEndpointURL("token endpoint", as.TokenEndpoint); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"resource":      {resource},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	o := applyOptions(opts)
	o.addTo(form)
	ts, err := tokenRequest(ctx, o.client(hc), as.TokenEndpoint, form, c, scopes, refreshToken)
	if err != nil {
		return nil, fmt.Errorf("refresh at %s: %w", as.TokenEndpoint, err)
	}
	return ts, nil
}

// tokenRequest posts form to a token endpoint with client authentication and
// parses the answer. secrets are redacted from any error description.
func tokenRequest(ctx context.Context, hc *http.Client, endpoint string, form url.Values, c *Client, requested []string, secrets ...string) (*TokenSet, error) {
	status, ctype, body, err := postTokenForm(ctx, hc, endpoint, form, c)
	if err != nil {
		return nil, err
	}
	raw, err := decodeTokenBody(ctype, body)
	clear(body) // the tokens in it are in raw now: leave no other copy behind
	if err == nil && rawString(raw, "error") != "" {
		return nil, bodyTokenError(status, raw, append(secrets, c.ClientSecret))
	}
	if !status2xx(status) || err != nil {
		// No OAuth error code: a proxy's, firewall's or web server's page.
		return nil, responseError(status, ctype, "not an OAuth response")
	}
	if rawString(raw, "access_token") == "" {
		return nil, responseError(status, ctype, "not a token response (no access_token)")
	}
	return tokenSetFromRaw(raw, time.Now(), requested)
}

func status2xx(status int) bool { return status >= 200 && status <= 299 }

// bodyTokenError builds a *TokenError from a decoded error body (raw may be
// nil when the body was not decodable).
func bodyTokenError(status int, raw map[string]any, secrets []string) *TokenError {
	return &TokenError{
		Status:      status,
		Code:        sanitizeRemote(rawString(raw, "error"), maxErrCodeLen),
		Description: sanitizeRemote(redactSecrets(rawString(raw, "error_description"), secrets), maxErrDescLen),
	}
}

// postForm POSTs form with the client's authentication and returns the
// status, content type and a capped body.
func postTokenForm(ctx context.Context, hc *http.Client, endpoint string, form url.Values, c *Client) (int, string, []byte, error) {
	style, secret, err := clientAuthStyle(c)
	if err != nil {
		return 0, "", nil, err
	}
	form = cloneForm(form)
	if style == oauth2.AuthStyleInParams {
		form.Set("client_id", c.ClientID)
		if secret != "" {
			form.Set("client_secret", secret)
		}
		if c.TokenEndpointAuthMethod == AuthPrivateKeyJWT {
			if err := addClientAssertion(form, c, endpoint); err != nil {
				return 0, "", nil, err
			}
		}
	}
	enc := form.Encode()
	defer wipe.String(enc) // it carries a code, a refresh token or a client secret
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(enc))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if style == oauth2.AuthStyleInHeader {
		// RFC 6749 §2.3.1: form-encode id and secret before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(secret))
	}
	hc = cmp.Or(hc, http.DefaultClient)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return 0, "", nil, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxTokenResponse {
		return 0, "", nil, fmt.Errorf("answer larger than %d bytes", maxTokenResponse)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// authStyle maps the client's registered token_endpoint_auth_method to how
// credentials are sent. An empty method means client_secret_basic when there
// is a secret (the RFC 7591 §2 default) and none otherwise.
func clientAuthStyle(c *Client) (oauth2.AuthStyle, string, error) {
	method := c.TokenEndpointAuthMethod
	if method == "" {
		method = "none"
		if c.ClientSecret != "" {
			method = "client_secret_basic"
		}
	}
	switch method {
	case "none":
		return oauth2.AuthStyleInParams, "", nil
	case "client_secret_post", "client_secret_basic":
		if c.ClientSecret == "" {
			return 0, "", fmt.Errorf("client uses %s but has no secret", method)
		}
		if method == "client_secret_post" {
			return oauth2.AuthStyleInParams, c.ClientSecret, nil
		}
		return oauth2.AuthStyleInHeader, c.ClientSecret, nil
	case AuthPrivateKeyJWT:
		if c.Key == nil {
			return 0, "", errors.New("client uses private_key_jwt but has no signing key")
		}
		return oauth2.AuthStyleInParams, "", nil
	}
	return 0, "", fmt.Errorf("unsupported token_endpoint_auth_method %q", sanitizeRemote(method, maxErrCodeLen))
}

func cloneForm(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vv := range v {
		out[k] = append([]string(nil), vv...)
	}
	return out
}

// decodeBody decodes a JSON object, or a form-encoded body (some servers
// answer that way), into a map.
func decodeTokenBody(contentType string, body []byte) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("answer is not form-encoded")
		}
		return formToRaw(v), nil
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, errors.New("answer is not a JSON object")
	}
	return raw, nil
}

func formToRaw(v url.Values) map[string]any {
	raw := make(map[string]any, len(v))
	for k := range v {
		raw[k] = v.Get(k)
	}
	return raw
}

func rawString(raw map[string]any, k string) string {
	s, _ := raw[k].(string)
	return s
}

// tokenSetFromRaw turns a successful token answer into a TokenSet. It serves
// the code exchange (from x/oauth2's Token.Raw), refresh and device grants.
//
//   - expires_in → ExpiresAt = now + expires_in, at most ten years; absent,
//     0, negative or not a number → the access token's JWT exp if it is a
//     JWT, else the zero time (lifetime unknown). RFC 6749 §5.1 only
//     recommends expires_in, and a server that sends 0 or a negative value
//     has not said when the token expires: it has just been issued, so it
//     is served until a resource server rejects it.
//   - scope absent or empty → requested.
//   - token_type must be Bearer (case-insensitive) or absent, or DPoP
//     (RFC 9449 §5) when the request carried a proof.
func tokenSetFromRaw(raw map[string]any, now time.Time, requested []string) (*TokenSet, error) {
	access := rawString(raw, "access_token")
	if access == "" {
		return nil, errors.New("token response has no access_token")
	}
	typ := rawString(raw, "token_type")
	tt := "Bearer"
	switch {
	case strings.EqualFold(typ, "dpop"):
		tt = "DPoP"
	case typ != "" && !strings.EqualFold(typ, "bearer"):
		return nil, fmt.Errorf("unsupported token_type %q", sanitizeRemote(typ, maxErrCodeLen))
	}
	ts := &TokenSet{
		AccessToken:  access,
		TokenType:    tt,
		RefreshToken: rawString(raw, "refresh_token"),
	}
	if secs, ok := rawSeconds(raw, "expires_in"); ok && secs > 0 {
		ts.ExpiresAt = now.Add(time.Duration(secs) * time.Second)
	} else if exp, ok := JWTExpiry(access); ok {
		ts.ExpiresAt = exp
	}
	if s := strings.Fields(rawString(raw, "scope")); len(s) > 0 {
		ts.Scopes = s
	} else {
		ts.Scopes = append([]string(nil), requested...)
	}
	return ts, nil
}

// numberField reads an integer seconds field sent as a JSON number or a
// string (both occur in the wild). Values are clamped to ten years.
func rawSeconds(raw map[string]any, k string) (int64, bool) {
	var f float64
	switch v := raw[k].(type) {
	case json.Number:
		x, err := v.Float64()
		if err != nil {
			return 0, false
		}
		f = x
	case float64:
		f = v
	case int64:
		f = float64(v)
	case string:
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
		f = x
	default:
		return 0, false
	}
	if math.IsNaN(f) {
		return 0, false
	}
	const tenYears = 10 * 365 * 24 * 3600
	return int64(math.Max(math.Min(f, tenYears), -1)), true
}

const (
	maxErrCodeLen = 64
	maxErrDescLen = 300
)

// sanitize keeps the RFC 6749 error charset (printable ASCII), replaces other
// characters with '?' and caps the length, so remote text cannot forge
// terminal or log output.
func sanitizeRemote(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// redact removes any secret the request carried from server-supplied text.
func redactSecrets(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
