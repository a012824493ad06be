package oauth

import (
	"bytes"
	"cmp"
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
	// Scopes are the scopes this login asks for. A dynamic registration
	// sends them (with those of a registration it replaces) as its scope
	// metadata, and a stored dynamic registration that lacks one of them is
	// replaced: servers such as Ory Hydra refuse scopes a client was not
	// registered for.
	Scopes []string
	// Audience, when set, is sent as the DCR "audience" metadata (Ory
	// Hydra's audience whitelist; see WithAudience). A stored registration
	// lacking one is updated or replaced like one lacking a scope.
	Audience []string
	// Progress, when set, is told before a registration request is sent
	// ("registering with …"), and only then.
	Progress func(msg string)
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

	why := ""
	if e := req.Existing; e != nil && e.Issuer == as.Issuer && e.ClientID != "" && reusable(e, req, now()) {
		missing := missingScope(e, req.Scopes)
		if missing != "" {
			missing = "scope " + missing
		} else if aud := missingAudience(e, req.Audience); aud != "" {
			missing = "audience " + aud
		}
		if missing == "" || as.RegistrationEndpoint == "" {
			c := *e
			c.RedirectURIs = slices.Clone(e.RedirectURIs)
			return &c, nil
		}
		// Update it in place where the server offers RFC 7592, else
		// register again: the old client's sessions keep refreshing with
		// the client they recorded.
		req.Scopes = UnionScopes(strings.Fields(e.Scope), req.Scopes)
		req.Audience = UnionScopes(e.Audience, req.Audience)
		if e.RegistrationClientURI != "" {
			if req.Progress != nil {
				req.Progress("updating the registration with " + as.Issuer + " (it does not cover " + missing + ")")
			}
			c, err := updateDCR(ctx, hc, as, e, req, now())
			if err == nil {
				return c, nil
			}
			why = " again (updating the registration failed: " + err.Error() + ")"
		} else {
			why = " again (the stored registration does not cover " + missing + ")"
		}
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
		if req.Progress != nil {
			req.Progress("registering with " + as.Issuer + why)
		}
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

// missingScope returns the first of want a dynamic registration was not
// registered for ("" when it covers them all, or is not a dynamic one).
func missingScope(e *Client, want []string) string {
	if e.Source != SourceDCR {
		return ""
	}
	have := strings.Fields(e.Scope)
	for _, w := range want {
		if !slices.Contains(have, w) {
			return w
		}
	}
	return ""
}

// missingAudience returns the first of want a dynamic registration was not
// registered for ("" when it covers them all, or is not a dynamic one).
func missingAudience(e *Client, want []string) string {
	if e.Source != SourceDCR {
		return ""
	}
	for _, w := range want {
		if !slices.Contains(e.Audience, w) {
			return w
		}
	}
	return ""
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

// dcrResponse is the part of an RFC 7591 §3.2.1 (and RFC 7592 §3) answer
// mcpkey keeps.
type dcrResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	ClientSecretExpiresAt   int64    `json:"client_secret_expires_at"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	RedirectURIs            []string `json:"redirect_uris"`
	RegistrationClientURI   string   `json:"registration_client_uri"`
	RegistrationAccessToken string   `json:"registration_access_token"`
	Audience                []string `json:"audience"`
}

func registerDCR(ctx context.Context, hc *http.Client, as *AuthServer, req RegisterRequest, now time.Time) (*Client, error) {
	return sendRegistration(ctx, hc, as, nil, req, now)
}

// updateDCR updates the registration e in place (RFC 7592 §2.2) with req's
// scopes, keeping its client id. The server must have given e a
// registration_client_uri on the registration endpoint's origin and a
// registration access token; the access token is sent nowhere else.
func updateDCR(ctx context.Context, hc *http.Client, as *AuthServer, e *Client, req RegisterRequest, now time.Time) (*Client, error) {
	if e.RegistrationClientURI == "" || e.RegistrationAccessToken == "" {
		return nil, errors.New("the registration offers no RFC 7592 management")
	}
	u, err1 := url.Parse(e.RegistrationClientURI)
	r, err2 := url.Parse(as.RegistrationEndpoint)
	if err1 != nil || err2 != nil || u.Scheme != r.Scheme || u.Host != r.Host || u.User != nil {
		return nil, errors.New("registration_client_uri is not on the registration endpoint's origin")
	}
	return sendRegistration(ctx, hc, as, e, req, now)
}

// sendRegistration POSTs a new registration to the registration endpoint,
// or with e set PUTs e's updated metadata to its registration_client_uri.
func sendRegistration(ctx context.Context, hc *http.Client, as *AuthServer, e *Client, req RegisterRequest, now time.Time) (*Client, error) {
	if req.RedirectURI == "" {
		return nil, errors.New("dynamic registration needs a redirect URI")
	}
	name := cmp.Or(req.ClientName, "mcpkey")
	meta := oauthex.ClientRegistrationMetadata{
		RedirectURIs:            []string{req.RedirectURI},
		TokenEndpointAuthMethod: "none",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		ClientName:              name,
		Scope:                   strings.Join(req.Scopes, " "),
		ApplicationType:         applicationType(req.RedirectURI),
	}
	method, endpoint := http.MethodPost, as.RegistrationEndpoint
	// oauthex's metadata has no audience member (it is not in RFC 7591);
	// Hydra and others whitelist a client's audiences with it.
	doc := struct {
		ClientID string `json:"client_id,omitempty"`
		*oauthex.ClientRegistrationMetadata
		Audience []string `json:"audience,omitempty"`
	}{"", &meta, req.Audience}
	if e != nil {
		// RFC 7592 §2.2: the whole metadata again, with the client id.
		method, endpoint = http.MethodPut, e.RegistrationClientURI
		meta.TokenEndpointAuthMethod = e.TokenEndpointAuthMethod
		doc.ClientID = e.ClientID
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode registration request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("registration request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if e != nil {
		hreq.Header.Set("Authorization", "Bearer "+e.RegistrationAccessToken)
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, err // a *url.Error: it names the URL
	}
	defer resp.Body.Close()
	raw, err := ReadLimited(resp.Body, DefaultMaxBody*16) // the client's own cap applies first
	if err != nil {
		return nil, fmt.Errorf("read registration answer from %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		re := &RegistrationError{URL: endpoint, Status: resp.StatusCode}
		var ans struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if json.Unmarshal(raw, &ans) == nil {
			re.Code = clean(ans.Error, 64)
			re.Description = clean(ans.ErrorDescription, 300)
			if e != nil {
				re.Description = redactSecrets(re.Description, []string{e.RegistrationAccessToken, e.ClientSecret})
			}
		}
		return nil, re
	}
	var r dcrResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		// Never quote the body: it may hold the client secret.
		return nil, fmt.Errorf("registration answer from %s is not valid JSON", endpoint)
	}
	if r.ClientID == "" {
		return nil, fmt.Errorf("registration answer from %s has no client_id (RFC 7591 §3.2.1)", endpoint)
	}
	c := &Client{
		Issuer:                  as.Issuer,
		ClientID:                r.ClientID,
		ClientSecret:            r.ClientSecret,
		ClientSecretExpiresAt:   r.ClientSecretExpiresAt,
		TokenEndpointAuthMethod: r.TokenEndpointAuthMethod,
		RedirectURIs:            r.RedirectURIs,
		Source:                  SourceDCR,
		RegisteredAt:            now,
		Scope:                   meta.Scope,
		RegistrationClientURI:   r.RegistrationClientURI,
		RegistrationAccessToken: r.RegistrationAccessToken,
		Audience:                r.Audience,
	}
	if c.Audience == nil {
		c.Audience = req.Audience
	}
	if e != nil {
		if r.ClientID != e.ClientID {
			return nil, fmt.Errorf("registration update at %s answered for another client id", endpoint)
		}
		// What the update answer leaves out stays as it was.
		c.RegisteredAt = e.RegisteredAt
		if c.ClientSecret == "" {
			c.ClientSecret, c.ClientSecretExpiresAt = e.ClientSecret, e.ClientSecretExpiresAt
		}
		c.TokenEndpointAuthMethod = cmp.Or(c.TokenEndpointAuthMethod, e.TokenEndpointAuthMethod)
		c.RegistrationClientURI = cmp.Or(c.RegistrationClientURI, e.RegistrationClientURI)
		c.RegistrationAccessToken = cmp.Or(c.RegistrationAccessToken, e.RegistrationAccessToken)
	}
	if c.TokenEndpointAuthMethod == "" {
		// RFC 7591 §2: the default is client_secret_basic, which needs a
		// secret; without one the client is public.
		c.TokenEndpointAuthMethod = "none"
		if c.ClientSecret != "" {
			c.TokenEndpointAuthMethod = "client_secret_basic"
		}
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = meta.RedirectURIs
	}
	return c, nil
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
