package oauth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// Grants without a browser: client credentials (RFC 6749 §4.4, the MCP
// extension io.modelcontextprotocol/oauth-client-credentials), the JWT
// bearer grant (RFC 7523 §2.1) for workload identity federation and
// enterprise-managed authorization, the RFC 8693 token exchange for an
// identity assertion (ID-JAG), and private_key_jwt client authentication
// (RFC 7523 §2.2).
//
// Libraries: golang.org/x/oauth2/clientcredentials cannot authenticate with
// private_key_jwt and would put the server's raw error text in our errors;
// its jwt package builds Google-style assertions from a service-account key,
// not a grant around an assertion someone else issued. The go-sdk's
// auth/extauth handlers are whole clients (their own token cache and 401
// loop) and send the client secret only in the body (client_secret_post),
// which the MCP authorization servers of the extension's profile need not
// accept. So the grants here go through tokenRequest, the same request,
// client authentication, answer checks and secret redaction as the
// refresh; the token exchange is the go-sdk's oauthex.ExchangeToken.
// Assertions are signed with golang-jwt (already a dependency).

// Grant types and client authentication.
const (
	GrantTypeClientCredentials = "client_credentials"
	GrantTypeJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// AuthPrivateKeyJWT is the token_endpoint_auth_method of a client that
	// authenticates with a signed JWT (Client.Key).
	AuthPrivateKeyJWT   = "private_key_jwt"
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// assertionLifetime is how long a client assertion is valid: one
	// request, with room for clock skew.
	assertionLifetime = 2 * time.Minute
)

// ClientKey is a private_key_jwt client's signing key.
type ClientKey struct {
	Signer crypto.Signer
	Alg    string // JWS algorithm: ES256, RS256, EdDSA, …
}

// ParseClientKey reads a PEM private key (PKCS #8, SEC 1 EC or PKCS #1 RSA)
// for private_key_jwt. alg "" derives the algorithm from the key: ES256,
// ES384 or ES512 by curve, RS256 for RSA, EdDSA for Ed25519; a given alg
// must fit the key. Errors never quote the key.
func ParseClientKey(data []byte, alg string) (*ClientKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("client key: not a PEM private key")
	}
	defer clear(block.Bytes)
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("client key: PEM block %q is not a private key (expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", sanitizeRemote(block.Type, maxErrCodeLen))
	}
	if err != nil {
		return nil, errors.New("client key: the PEM block does not hold a readable private key")
	}
	var fits []string
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			fits = []string{"ES256"}
		case elliptic.P384():
			fits = []string{"ES384"}
		case elliptic.P521():
			fits = []string{"ES512"}
		}
	case *rsa.PrivateKey:
		fits = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case ed25519.PrivateKey:
		fits = []string{"EdDSA"}
	}
	if len(fits) == 0 {
		return nil, fmt.Errorf("client key: unsupported key type %T", key)
	}
	switch {
	case alg == "":
		alg = fits[0]
	case !slices.Contains(fits, alg):
		return nil, fmt.Errorf("client key: algorithm %s does not fit this key (it takes %s)", sanitizeRemote(alg, maxErrCodeLen), strings.Join(fits, ", "))
	}
	return &ClientKey{Signer: key.(crypto.Signer), Alg: alg}, nil
}

// assertion signs a client assertion (RFC 7523 §3): iss and sub the client
// id, aud the authorization server's issuer (what the MCP extension and
// RFC 7523bis ask for; the token endpoint where the issuer is unknown), a
// fresh jti, and a short lifetime.
func (k *ClientKey) assertion(clientID, aud string, now time.Time) (string, error) {
	m := jwt.GetSigningMethod(k.Alg)
	if m == nil {
		return "", fmt.Errorf("client assertion: unsupported algorithm %s", k.Alg)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := jwt.MapClaims{
		"iss": clientID, "sub": clientID, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	}
	var key any = k.Signer
	if e, ok := k.Signer.(ed25519.PrivateKey); ok {
		key = e
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("client assertion: sign: %w", err)
	}
	return s, nil
}

// addClientAssertion adds a private_key_jwt client's assertion to form.
func addClientAssertion(form url.Values, c *Client, endpoint string) error {
	aud := cmp.Or(c.Issuer, endpoint)
	a, err := c.Key.assertion(c.ClientID, aud, time.Now())
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", clientAssertionType)
	form.Set("client_assertion", a)
	return nil
}

// ClientCredentials runs the client_credentials grant at as for resource
// (RFC 8707, sent verbatim) with the client's own authentication
// (client_secret_basic, client_secret_post or private_key_jwt). The answer
// has no refresh token to keep: the caller runs the grant again when the
// token nears expiry. scopes are sent when non-empty. hc nil means
// http.DefaultClient.
func ClientCredentials(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, resource string, scopes []string, opts ...RequestOption) (*TokenSet, error) {
	form := url.Values{"grant_type": {GrantTypeClientCredentials}}
	ts, err := grantRequest(ctx, hc, as, c, form, resource, scopes, opts)
	if err != nil {
		return nil, fmt.Errorf("client credentials grant at %s: %w", as.TokenEndpoint, err)
	}
	return ts, nil
}

// JWTBearer runs the JWT bearer grant (RFC 7523 §2.1) at as: assertion is
// the workload's token (workload identity federation) or an identity
// assertion (ID-JAG, enterprise-managed authorization). The client
// authenticates as registered; a client with method "none" sends its id
// only. The assertion never appears in an error.
func JWTBearer(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, assertion, resource string, scopes []string, opts ...RequestOption) (*TokenSet, error) {
	if assertion == "" {
		return nil, errors.New("jwt bearer grant: empty assertion")
	}
	form := url.Values{"grant_type": {GrantTypeJWTBearer}, "assertion": {assertion}}
	ts, err := grantRequest(ctx, hc, as, c, form, resource, scopes, opts, assertion)
	if err != nil {
		return nil, fmt.Errorf("jwt bearer grant at %s: %w", as.TokenEndpoint, err)
	}
	return ts, nil
}

func grantRequest(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, form url.Values, resource string, scopes []string, opts []RequestOption, secrets ...string) (*TokenSet, error) {
	if resource == "" {
		return nil, errors.New("no resource")
	}
	if err := checkClientFor(as, c); err != nil {
		return nil, err
	}
	if err := checkEndpointURL("token endpoint", as.TokenEndpoint); err != nil {
		return nil, err
	}
	form.Set("resource", resource)
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	applyOptions(opts).addTo(form)
	return tokenRequest(ctx, hc, as.TokenEndpoint, form, c, scopes, secrets...)
}

// Token types of the identity assertion exchange.
const (
	TokenTypeIDToken = oauthex.TokenTypeIDToken
	TokenTypeIDJAG   = oauthex.TokenTypeIDJAG
)

// ExchangeIDJAG exchanges an ID token from the identity provider's sign-in
// for an identity assertion grant (ID-JAG) at the IdP's token endpoint
// (RFC 8693, profile of the MCP enterprise-managed authorization
// extension): audience is the MCP server's authorization server (its
// issuer), resource the MCP server. c is mcpkey's client at the IdP. It
// returns the ID-JAG, a JWT to send to that authorization server with
// JWTBearer. Neither token appears in an error.
func ExchangeIDJAG(ctx context.Context, hc *http.Client, tokenEndpoint string, c *Client, idToken, audience, resource string, scopes []string) (string, error) {
	if err := checkEndpointURL("identity provider token endpoint", tokenEndpoint); err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	creds := &oauthex.ClientCredentials{ClientID: c.ClientID}
	if c.ClientSecret != "" {
		creds.ClientSecretAuth = &oauthex.ClientSecretAuth{ClientSecret: c.ClientSecret}
	}
	hc = cmp.Or(hc, http.DefaultClient)
	tok, err := oauthex.ExchangeToken(ctx, tokenEndpoint, &oauthex.TokenExchangeRequest{
		RequestedTokenType: TokenTypeIDJAG, Audience: audience, Resource: resource, Scope: scopes,
		SubjectToken: idToken, SubjectTokenType: TokenTypeIDToken,
	}, creds, hc)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// RetrieveError's own text may quote the whole answer.
			return "", fmt.Errorf("token exchange at %s: %w", tokenEndpoint, retrieveToTokenError(re, idToken, c.ClientSecret))
		}
		return "", fmt.Errorf("token exchange at %s: %s", tokenEndpoint, redactSecrets(err.Error(), []string{idToken, c.ClientSecret}))
	}
	if typ, _ := tok.Extra("issued_token_type").(string); typ != TokenTypeIDJAG {
		return "", fmt.Errorf("token exchange at %s: the identity provider issued %q, not an identity assertion (%s)", tokenEndpoint, sanitizeRemote(typ, maxErrDescLen), TokenTypeIDJAG)
	}
	return tok.AccessToken, nil
}

// DiscoverIdP reads an identity provider's metadata (OpenID Connect
// discovery, else RFC 8414) for its token endpoint. Unlike an MCP
// authorization server, the IdP is not asked for PKCE or an authorization
// endpoint: only the token exchange happens there. The issuer must match
// exactly (RFC 8414 §3.3, OIDC Discovery §4.3).
func DiscoverIdP(ctx context.Context, hc *http.Client, issuer string, opts DiscoverOptions) (*AuthServer, error) {
	if hc == nil {
		hc = NewHTTPClient(HTTPOptions{})
	}
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" || iu.User != nil {
		return nil, fmt.Errorf("identity provider %q: not an issuer URL without query or fragment", issuer)
	}
	log := opts.Logger
	log = cmp.Or(log, slog.New(slog.DiscardHandler))
	c := &discoverer{hc: hc, opts: opts, log: log, serverLoopback: isLoopbackName(iu.Hostname())}
	urls := asMetadataURLs(iu)
	// OpenID Connect discovery first: an IdP is an OpenID provider.
	slices.SortStableFunc(urls, func(a, b string) int {
		return cmp.Compare(boolInt(!strings.Contains(a, "openid-configuration")), boolInt(!strings.Contains(b, "openid-configuration")))
	})
	for _, mu := range urls {
		var as AuthServer
		found, err := c.getJSON(ctx, mu, &as)
		if err != nil {
			return nil, fmt.Errorf("identity provider %s: %w", issuer, err)
		}
		if !found {
			continue
		}
		if as.Issuer != issuer {
			return nil, fmt.Errorf("identity provider metadata at %s names issuer %q, not %q", mu, sanitizeRemote(as.Issuer, maxErrDescLen), issuer)
		}
		if err := checkEndpointURL("token_endpoint", as.TokenEndpoint); err != nil {
			return nil, fmt.Errorf("identity provider metadata at %s: %w", mu, err)
		}
		if err := c.checkNamedURL(as.TokenEndpoint, "token_endpoint"); err != nil {
			return nil, err
		}
		return &as, nil
	}
	return nil, fmt.Errorf("identity provider %s publishes no metadata", issuer)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// JWTClaim returns a string claim of a JWT without verifying it, "" when
// absent or not a JWT (see JWTExpiry).
func JWTClaim(token, name string) string {
	parts := strings.Split(token, ".")
	if len(token) > maxJWTLen || len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	s, _ := claims[name].(string)
	return s
}
