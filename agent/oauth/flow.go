package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// ErrStateMismatch means an authorization response carried a missing or
// different state: it belongs to no login in progress and is dropped without
// ending the flow (RFC 9700 §2.1; spec-checklist.md §G, §N.7).
var ErrStateMismatch = errors.New("authorization response state does not match this login")

// ErrIssuerMismatch means the RFC 9207 iss check failed: a missing iss where
// the authorization server advertises it, or an iss not identical to the
// recorded issuer (a possible mix-up attack). The flow must end; the
// response's error and error_description are not shown.
var ErrIssuerMismatch = errors.New("authorization response iss check failed")

// AuthorizeError is an error returned by the authorization endpoint in the
// redirect (RFC 6749 §4.1.2.1), sanitized and length-capped.
type AuthorizeError struct {
	Code        string // "access_denied", "invalid_scope", …
	Description string // error_description
}

func (e *AuthorizeError) Error() string {
	s := "authorization server refused the login: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Flow is the record of one authorization-code login (spec-checklist.md §N.6):
// the validated issuer, the endpoints, the PKCE verifier, state, resource,
// scopes, redirect URI and client, fixed when the flow starts. The code is
// checked against it and redeemed only at its token endpoint.
//
// The verifier and state never leave the Flow except in the authorization
// URL (state, the S256 challenge) and the token request (verifier). A Flow is
// used by one login; its methods are safe for concurrent use since it is not
// modified after NewFlow.
type Flow struct {
	issuer       string
	authEndpoint string
	tokenURL     string
	issSupported bool
	resource     string
	scopes       []string
	redirectURI  string
	client       Client
	verifier     string
	state        string
	opts         requestOptions
}

// NewFlow starts a login record with a fresh PKCE verifier and state.
//
// resource is the Protected Resource Metadata resource string, sent
// byte-for-byte (never re-serialized through url.URL). scopes may be empty:
// then no scope parameter is sent at all. redirectURI is the loopback
// listener's URI (CallbackServer.RedirectURI). The client must belong to
// as.Issuer (a client with an empty Issuer is accepted as the caller's
// responsibility).
//
// The authorization and token endpoints must be https, or http on a loopback
// host (127.0.0.0/8, ::1, localhost) for local and test servers. opts add
// parameters to the authorization and token requests (WithAudience).
func NewFlow(as *AuthServer, c *Client, resource string, scopes []string, redirectURI string, opts ...RequestOption) (*Flow, error) {
	if as == nil || c == nil {
		return nil, errors.New("new flow: missing authorization server or client")
	}
	if err := checkClientFor(as, c); err != nil {
		return nil, fmt.Errorf("new flow: %w", err)
	}
	if err := checkEndpointURL("authorization endpoint", as.AuthorizationEndpoint); err != nil {
		return nil, fmt.Errorf("new flow: %w", err)
	}
	if err := checkEndpointURL("token endpoint", as.TokenEndpoint); err != nil {
		return nil, fmt.Errorf("new flow: %w", err)
	}
	if resource == "" {
		return nil, errors.New("new flow: no resource")
	}
	if err := validRedirectURI(redirectURI); err != nil {
		return nil, fmt.Errorf("new flow: %w", err)
	}
	state, err := randomToken(32)
	if err != nil {
		return nil, fmt.Errorf("new flow: %w", err)
	}
	var sc []string
	for _, s := range scopes {
		if s != "" {
			sc = append(sc, s)
		}
	}
	return &Flow{
		issuer:       as.Issuer,
		authEndpoint: as.AuthorizationEndpoint,
		tokenURL:     as.TokenEndpoint,
		issSupported: as.IssParameterSupported,
		resource:     resource,
		scopes:       sc,
		redirectURI:  redirectURI,
		client:       *c,
		verifier:     oauth2.GenerateVerifier(),
		state:        state,
		opts:         applyOptions(opts),
	}, nil
}

// Resource is the resource string sent on every request of the flow.
func (f *Flow) Resource() string { return f.resource }

// Audience is the audience parameter sent on every request of the flow
// ("" when none is sent).
func (f *Flow) Audience() string { return f.opts.audience }

// RedirectURI is the loopback redirect URI of the flow.
func (f *Flow) RedirectURI() string { return f.redirectURI }

// LogValue redacts the verifier and state.
func (f *Flow) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", f.issuer),
		slog.String("resource", f.resource),
		slog.String("client_id", f.client.ClientID),
		slog.String("redirect_uri", f.redirectURI),
		slog.Any("scopes", f.scopes),
		slog.String("verifier", "REDACTED"),
		slog.String("state", "REDACTED"),
	)
}

func (f *Flow) config() *oauth2.Config {
	style, secret, _ := clientAuthStyle(&f.client) // validated in NewFlow
	return &oauth2.Config{
		ClientID:     f.client.ClientID,
		ClientSecret: secret,
		RedirectURL:  f.redirectURI,
		Scopes:       f.scopes, // empty: x/oauth2 sends no scope parameter at all
		Endpoint: oauth2.Endpoint{
			AuthURL:   f.authEndpoint,
			TokenURL:  f.tokenURL,
			AuthStyle: style,
		},
	}
}

// AuthCodeURL is the URL to open in the browser: response_type=code,
// client_id, redirect_uri, state, code_challenge (S256), resource, and scope
// only when scopes were requested; audience with WithAudience.
func (f *Flow) AuthCodeURL() string {
	return f.config().AuthCodeURL(f.state, f.params(oauth2.S256ChallengeOption(f.verifier))...)
}

// params are the flow's resource (and audience) parameters after first.
func (f *Flow) params(first oauth2.AuthCodeOption) []oauth2.AuthCodeOption {
	p := []oauth2.AuthCodeOption{first, oauth2.SetAuthURLParam("resource", f.resource)}
	if f.opts.audience != "" {
		p = append(p, oauth2.SetAuthURLParam("audience", f.opts.audience))
	}
	return p
}

// ValidateCallback checks an authorization response's query and returns its
// code. In order:
//
//  1. state must be present once and equal (constant time), else
//     ErrStateMismatch: the response is not for this flow and is dropped.
//  2. RFC 9207 iss (spec-checklist.md §G): when the server advertises
//     authorization_response_iss_parameter_supported, iss is required; when
//     present it must be identical to the recorded issuer (plain string
//     compare, no normalisation). Failure is ErrIssuerMismatch, and the
//     response's error fields are neither acted on nor shown.
//  3. an error parameter becomes an *AuthorizeError.
//  4. a code must be present.
func (f *Flow) ValidateCallback(q url.Values) (string, error) {
	return ValidateAuthResponse(q, f.state, f.issuer, f.issSupported)
}

// ValidateAuthResponse checks an authorization response (the callback's
// query) of a login that sent state to issuer, and returns its code: the
// state matches (constant time), iss is the issuer when present and
// present when issSupported (RFC 9207), no error.
func ValidateAuthResponse(q url.Values, state, issuer string, issSupported bool) (string, error) {
	states := q["state"]
	if len(states) != 1 || subtle.ConstantTimeCompare([]byte(states[0]), []byte(state)) != 1 {
		return "", ErrStateMismatch
	}
	if iss, present := q["iss"]; present {
		if len(iss) != 1 || iss[0] != issuer {
			return "", fmt.Errorf("%w: iss is not the issuer %s this login started with (possible mix-up attack)", ErrIssuerMismatch, issuer)
		}
	} else if issSupported {
		return "", fmt.Errorf("%w: %s advertises the iss parameter but the response has none", ErrIssuerMismatch, issuer)
	}
	if e := q.Get("error"); e != "" {
		return "", &AuthorizeError{
			Code:        sanitizeRemote(e, maxErrCodeLen),
			Description: sanitizeRemote(q.Get("error_description"), maxErrDescLen),
		}
	}
	codes := q["code"]
	if len(codes) != 1 || codes[0] == "" {
		return "", errors.New("authorization response has no code")
	}
	return codes[0], nil
}

// Exchange redeems code at the flow's recorded token endpoint with the PKCE
// verifier, redirect_uri and resource, authenticating as the client's
// token_endpoint_auth_method says. hc carries the request (x/oauth2 takes a
// client through the oauth2.HTTPClient context value); nil means
// http.DefaultClient. Server errors are *TokenError.
func (f *Flow) Exchange(ctx context.Context, hc *http.Client, code string) (*TokenSet, error) {
	if code == "" {
		return nil, errors.New("exchange: empty code")
	}
	if hc = f.opts.client(hc); hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	tok, err := f.config().Exchange(ctx, code, f.params(oauth2.VerifierOption(f.verifier))...)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			err = retrieveToTokenError(re, code, f.verifier, f.client.ClientSecret)
		}
		return nil, fmt.Errorf("exchange code at %s: %w", f.tokenURL, err)
	}
	// x/oauth2 keeps the answer's other fields behind Extra; expires_in is
	// read from there because Token.Expiry cannot tell 0 from absent.
	raw := map[string]any{
		"access_token":  tok.AccessToken,
		"token_type":    tok.TokenType,
		"refresh_token": tok.RefreshToken,
	}
	for _, k := range []string{"expires_in", "scope"} {
		if v := tok.Extra(k); v != nil && v != "" {
			raw[k] = v
		}
	}
	ts, err := tokenSetFromRaw(raw, time.Now(), f.scopes)
	if err != nil {
		return nil, fmt.Errorf("exchange code at %s: %w", f.tokenURL, err)
	}
	return ts, nil
}

// checkClient refuses a client registered with another issuer.
func checkClientFor(as *AuthServer, c *Client) error {
	if as == nil || c == nil {
		return errors.New("missing authorization server or client")
	}
	if c.ClientID == "" {
		return errors.New("client has no client_id")
	}
	if c.Issuer != "" && c.Issuer != as.Issuer {
		return fmt.Errorf("client %s is registered with %s, not %s", c.ClientID, c.Issuer, as.Issuer)
	}
	if _, _, err := clientAuthStyle(c); err != nil {
		return err
	}
	return nil
}

// checkEndpoint accepts https URLs, and http URLs on loopback hosts.
func checkEndpointURL(name, raw string) error {
	if raw == "" {
		return fmt.Errorf("no %s", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL", name)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%s %s must be an absolute URL without credentials or fragment", name, raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && flowIsLoopback(u.Hostname()):
	default:
		return fmt.Errorf("%s %s must use https (http only on loopback)", name, raw)
	}
	return nil
}

// checkRedirectURI accepts http loopback redirects (RFC 8252 §7.3) and https.
func validRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("redirect uri %q is not an absolute URL without fragment", raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && flowIsLoopback(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("redirect uri %q must be http on a loopback address or https", raw)
}

func flowIsLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
