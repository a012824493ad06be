package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Client registration (spec-checklist §E).
//
// oauthex.RegisterClient is not used: it posts through whatever client it
// is given with no SSRF policy of its own (§P gap 8), and its decode-failure
// errors quote the response body, which holds the client secret. Its request
// type, oauthex.ClientRegistrationMetadata, is reused.

// Registration sources, the values of Client.Source.
const (
	SourcePreregistered = "preregistered"
	SourceCIMD          = "cimd"
	SourceDCR           = "dcr"
)

// RegisterRequest says which client identities are available for one
// authorization server.
type RegisterRequest struct {
	// Existing is the registration stored for this issuer, or nil. It is
	// used only when Existing.Issuer is identical to the AS issuer.
	Existing *Client
	// ClientID and ClientSecret are pre-registered credentials from config
	// or flags (the secret from a file or the keyring, never argv).
	ClientID, ClientSecret string
	// PreregisteredIssuer, when set, is the issuer ClientID belongs to; at
	// another AS Register fails instead of sending it there (SEP-2352).
	PreregisteredIssuer string
	// ClientMetadataURL is a Client ID Metadata Document URL (CIMD): an https
	// URL with a path whose document lists RedirectURI.
	ClientMetadataURL string
	// RedirectURI is the loopback redirect, e.g. http://127.0.0.1/callback;
	// the AS must accept any port on it (RFC 8252 §7.3).
	RedirectURI string
	// ClientName is shown by the AS on its consent page. Empty means "mcpkey".
	ClientName string
	// Scopes, when set, are sent as the DCR scope metadata.
	Scopes []string
	// Audience, when set, is sent as the DCR "audience" metadata (Ory
	// Hydra's audience whitelist; see WithAudience). A stored registration
	// lacking one of them is not reused; the new one asks for the union.
	Audience []string
	// Now stamps RegisteredAt and checks secret expiry. Nil means time.Now.
	Now func() time.Time
}

// ErrNoRegistration is wrapped by Register's error when the AS offers no
// way to register and no client id was configured.
var ErrNoRegistration = errors.New("no client registration available")

// RegistrationError is an RFC 7591 §3.2.2 error answer from a registration
// endpoint. Description is the AS's text, cleaned of control characters and
// shortened; it is untrusted.
type RegistrationError struct {
	URL         string
	Status      int
	Code        string // e.g. invalid_redirect_uri, invalid_client_metadata
	Description string
}

func (e *RegistrationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registration at %s refused with status %d", e.URL, e.Status)
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Register returns the client identity to use with as, in the spec's
// priority (11-25 §Client Registration Approaches):
//
//  1. pre-registered credentials (req.ClientID), with the token-endpoint
//     auth method chosen from the AS's token_endpoint_auth_methods_supported;
//  2. the stored registration for this very issuer (req.Existing), unless
//     its secret has expired;
//  3. CIMD, when req.ClientMetadataURL is set and the AS advertises
//     client_id_metadata_document_supported;
//  4. Dynamic Client Registration (RFC 7591) at the registration_endpoint,
//     keeping what the AS returned (its secret and auth method);
//  5. otherwise an error wrapping ErrNoRegistration that asks for a client id.
//
// Only DCR makes a request. The caller persists the result keyed by
// Client.Issuer.
func Register(ctx context.Context, hc *http.Client, as *AuthServer, req RegisterRequest) (*Client, error) {
	if hc == nil {
		hc = NewHTTPClient(HTTPOptions{})
	}
	if as == nil || as.Issuer == "" {
		return nil, errors.New("register: no authorization server")
	}
	now := time.Now
	if req.Now != nil {
		now = req.Now
	}
	var redirects []string
	if req.RedirectURI != "" {
		redirects = []string{req.RedirectURI}
	}

	if req.ClientID != "" {
		if req.PreregisteredIssuer != "" && req.PreregisteredIssuer != as.Issuer {
			return nil, fmt.Errorf("register with %s: the configured client id belongs to issuer %s; the server now uses another authorization server, so the client id is not sent there (SEP-2352)", as.Issuer, req.PreregisteredIssuer)
		}
		return &Client{
			Issuer:                  as.Issuer,
			ClientID:                req.ClientID,
			ClientSecret:            req.ClientSecret,
			TokenEndpointAuthMethod: preregisteredAuthMethod(as.TokenEndpointAuthMethodsSupported, req.ClientSecret != ""),
			RedirectURIs:            redirects,
			Source:                  SourcePreregistered,
			RegisteredAt:            now(),
		}, nil
	}

	if e := req.Existing; e != nil && e.Issuer == as.Issuer && e.ClientID != "" && reusable(e, req, now()) {
		c := *e
		c.RedirectURIs = slices.Clone(e.RedirectURIs)
		return &c, nil
	}

	if req.ClientMetadataURL != "" && as.ClientIDMetadataDocumentSupported {
		if err := checkCIMDURL(req.ClientMetadataURL); err != nil {
			return nil, fmt.Errorf("register with %s: client metadata URL %s: %w", as.Issuer, req.ClientMetadataURL, err)
		}
		return &Client{
			Issuer:                  as.Issuer,
			ClientID:                req.ClientMetadataURL,
			TokenEndpointAuthMethod: "none",
			RedirectURIs:            redirects,
			Source:                  SourceCIMD,
			RegisteredAt:            now(),
		}, nil
	}

	if as.RegistrationEndpoint != "" {
		c, err := registerDCR(ctx, hc, as, req, now())
		if err != nil {
			return nil, fmt.Errorf("register with %s: %w", as.Issuer, err)
		}
		return c, nil
	}

	return nil, fmt.Errorf("register with %s: %w: the authorization server offers neither dynamic registration nor client ID metadata documents; register mcpkey there with redirect URI %s\nhint: pass --client-id (and --client-secret-file if it issued a secret)",
		as.Issuer, ErrNoRegistration, req.RedirectURI)
}

// reusable reports whether a stored registration still fits the request: the
// secret has not expired, a changed CIMD URL is not silently kept, and the
// redirect URI is registered (loopback ports are ignored, RFC 8252 §7.3).
func reusable(e *Client, req RegisterRequest, now time.Time) bool {
	if e.ClientSecretExpiresAt != 0 && !now.Before(time.Unix(e.ClientSecretExpiresAt, 0)) {
		return false
	}
	if e.Source == SourceCIMD && e.ClientID != req.ClientMetadataURL {
		return false
	}
	for _, aud := range req.Audience {
		if !slices.Contains(e.Audience, aud) {
			return false
		}
	}
	if req.RedirectURI == "" || len(e.RedirectURIs) == 0 {
		return true
	}
	for _, r := range e.RedirectURIs {
		if sameRedirect(r, req.RedirectURI) {
			return true
		}
	}
	return false
}

// sameRedirect compares redirect URIs, ignoring the port of loopback ones.
func sameRedirect(a, b string) bool {
	if a == b {
		return true
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || !isLoopbackName(ua.Hostname()) {
		return false
	}
	return ua.Scheme == ub.Scheme && ua.Hostname() == ub.Hostname() && ua.EscapedPath() == ub.EscapedPath() && ua.RawQuery == ub.RawQuery
}

// preregisteredAuthMethod picks a token-endpoint auth method the AS
// supports. An absent list means client_secret_basic (RFC 8414 §2).
func preregisteredAuthMethod(supported []string, hasSecret bool) string {
	if !hasSecret {
		return "none"
	}
	switch {
	case len(supported) == 0 || slices.Contains(supported, "client_secret_basic"):
		return "client_secret_basic"
	case slices.Contains(supported, "client_secret_post"):
		return "client_secret_post"
	}
	return "none"
}

// checkCIMDURL applies the CIMD client_id rules: https, a path, no
// fragment, userinfo or dot segments.
func checkCIMDURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "https" || u.Host == "":
		return errors.New("must be an https URL")
	case u.Path == "" || u.Path == "/":
		return errors.New("must have a path")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not have a fragment")
	case u.User != nil:
		return errors.New("must not have userinfo")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return errors.New("must not have . or .. segments")
		}
	}
	return nil
}

// applicationType is "native" for loopback and private-use redirect URIs,
// "web" for other https ones (OIDC Registration §2; SEP-837).
func applicationType(redirect string) string {
	u, err := url.Parse(redirect)
	if err != nil || redirect == "" {
		return "native"
	}
	if (u.Scheme == "http" || u.Scheme == "https") && !isLoopbackName(u.Hostname()) {
		return "web"
	}
	return "native"
}

// dcrResponse is the part of an RFC 7591 §3.2.1 answer mcpkey keeps.
type dcrResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	ClientSecretExpiresAt   int64    `json:"client_secret_expires_at"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	RedirectURIs            []string `json:"redirect_uris"`
	Audience                []string `json:"audience"`
}

func registerDCR(ctx context.Context, hc *http.Client, as *AuthServer, req RegisterRequest, now time.Time) (*Client, error) {
	if req.RedirectURI == "" {
		return nil, errors.New("dynamic registration needs a redirect URI")
	}
	name := req.ClientName
	if name == "" {
		name = "mcpkey"
	}
	meta := oauthex.ClientRegistrationMetadata{
		RedirectURIs:            []string{req.RedirectURI},
		TokenEndpointAuthMethod: "none",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		ClientName:              name,
		Scope:                   strings.Join(req.Scopes, " "),
		ApplicationType:         applicationType(req.RedirectURI),
	}
	// oauthex's metadata has no audience member (not in RFC 7591); Hydra
	// and others whitelist a client's audiences with it.
	audience := req.Audience
	if e := req.Existing; e != nil && e.Issuer == as.Issuer {
		audience = union(e.Audience, audience) // serve the old resources too
	}
	body, err := json.Marshal(&struct {
		oauthex.ClientRegistrationMetadata
		Audience []string `json:"audience,omitempty"`
	}{meta, audience})
	if err != nil {
		return nil, fmt.Errorf("encode registration request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("registration request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, err // a *url.Error: it names the URL
	}
	defer resp.Body.Close()
	raw, err := ReadLimited(resp.Body, DefaultMaxBody*16) // the client's own cap applies first
	if err != nil {
		return nil, fmt.Errorf("read registration answer from %s: %w", as.RegistrationEndpoint, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		re := &RegistrationError{URL: as.RegistrationEndpoint, Status: resp.StatusCode}
		var e struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if json.Unmarshal(raw, &e) == nil {
			re.Code = clean(e.Error, 64)
			re.Description = clean(e.ErrorDescription, 300)
		}
		return nil, re
	}
	var r dcrResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		// Never quote the body: it may hold the client secret.
		return nil, fmt.Errorf("registration answer from %s is not valid JSON", as.RegistrationEndpoint)
	}
	if r.ClientID == "" {
		return nil, fmt.Errorf("registration answer from %s has no client_id (RFC 7591 §3.2.1)", as.RegistrationEndpoint)
	}
	method := r.TokenEndpointAuthMethod
	if method == "" {
		// RFC 7591 §2: the default is client_secret_basic, which needs a
		// secret; without one the client is public.
		method = "none"
		if r.ClientSecret != "" {
			method = "client_secret_basic"
		}
	}
	redirects := r.RedirectURIs
	if len(redirects) == 0 {
		redirects = meta.RedirectURIs
	}
	if r.Audience == nil {
		r.Audience = audience
	}
	return &Client{
		Issuer:                  as.Issuer,
		ClientID:                r.ClientID,
		ClientSecret:            r.ClientSecret,
		ClientSecretExpiresAt:   r.ClientSecretExpiresAt,
		TokenEndpointAuthMethod: method,
		RedirectURIs:            redirects,
		Audience:                r.Audience,
		Source:                  SourceDCR,
		RegisteredAt:            now,
	}, nil
}

// union is a followed by the members of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// clean makes untrusted server text safe to show: no control characters,
// at most max runes.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}
