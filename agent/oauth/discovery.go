package oauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Discovery: RFC 9728 protected resource metadata (PRM), then RFC 8414 /
// OpenID Connect authorization server metadata, then the 2025-03-26
// fallback (spec-checklist §B, §C, §D, §M).
//
// go-sdk's oauthex.GetProtectedResourceMetadata and GetAuthServerMeta are
// not used for fetching: they route through their own discovery client
// unless handed a plain *http.Transport (§P gap 10), GetAuthServerMeta
// compares issuers ignoring a trailing slash (§P gap 5, looser than RFC 8414
// §3.3 "identical") and accepts a code_challenge_methods_supported without
// S256, and the PRM URL list builder is unexported (§P gap 9). The document
// types and the WWW-Authenticate parser are reused.

// DiscoverOptions tunes Discover. The zero value is the default.
type DiscoverOptions struct {
	// Issuer, when set, is the only authorization server accepted: it must
	// appear verbatim in the PRM's authorization_servers. Without PRM it
	// replaces the server's origin as the issuer (no default endpoints then).
	Issuer string
	// AllowPrivateNetwork lets a server that is not on loopback name
	// loopback URLs (PRM, issuer, endpoints). Set it together with
	// HTTPOptions.AllowPrivateNetwork.
	AllowPrivateNetwork bool
	// Logger receives one debug line per document fetched. Nil discards.
	Logger *slog.Logger
}

// RefusedError is a document or URL that discovery found but refused. Its
// message names the URL and the rule it broke.
type RefusedError struct {
	URL  string // the document's or the offending URL
	Rule string // the rule's reference, e.g. "RFC 9728 §3.3"
	msg  string
}

func (e *RefusedError) Error() string { return e.msg + " (" + e.Rule + ")" }

func refuse(u, rule, format string, args ...any) *RefusedError {
	return &RefusedError{URL: u, Rule: rule, msg: fmt.Sprintf(format, args...)}
}

// ErrNoAuthServer is wrapped by Discover's error when no authorization
// server could be used; the joined refusals say why.
var ErrNoAuthServer = errors.New("no usable authorization server")

// Discover finds and validates the authorization server for the MCP server
// at serverURL. ch is the probe's challenge, nil if there was none.
//
// PRM is looked for at ch.ResourceMetadata, then path-inserted
// (/.well-known/oauth-protected-resource/<path>), then at the root; the
// first document whose resource is identical to the identifier its URL was
// built from wins (RFC 9728 §3.3): the server URL for the challenge and
// path-inserted URLs, the origin (or the server URL) for the root one. That
// is the rule the conformance suite checks: auth/resource-mismatch serves a
// foreign resource at the path-inserted URL, auth/metadata-var2 serves the
// origin at the root. The resource string is kept verbatim.
//
// Then authorization_servers are tried in order, each separately, until one
// has metadata that validates (issuer identical, PKCE with S256). A found
// but refused PRM is an error, never a reason to fall back. Only when no
// PRM exists at all (a 2025-03-26 server) is the origin the issuer; its
// advertised endpoints are used, or, when it has no metadata,
// <origin>/authorize, /token and /register (AuthServer.Legacy).
func Discover(ctx context.Context, hc *http.Client, serverURL string, ch *Challenge, opts DiscoverOptions) (*Discovery, error) {
	if hc == nil {
		hc = NewHTTPClient(HTTPOptions{})
	}
	d, err := discover(ctx, hc, serverURL, ch, opts)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", serverURL, err)
	}
	return d, nil
}

func discover(ctx context.Context, hc *http.Client, serverURL string, ch *Challenge, opts DiscoverOptions) (*Discovery, error) {
	log := opts.Logger
	log = cmp.Or(log, slog.New(slog.DiscardHandler))
	su, err := url.Parse(serverURL)
	if err != nil || (su.Scheme != "https" && su.Scheme != "http") || su.Host == "" || su.Fragment != "" || su.User != nil {
		return nil, fmt.Errorf("server URL must be an absolute http(s) URL without userinfo or fragment")
	}
	c := &discoverer{hc: hc, opts: opts, log: log, serverLoopback: isLoopbackName(su.Hostname())}

	var refusals []error
	for _, cand := range prmCandidates(su, serverURL, ch) {
		if err := c.checkNamedURL(cand.url, "resource_metadata"); err != nil {
			refusals = append(refusals, err)
			continue
		}
		var prm oauthex.ProtectedResourceMetadata
		found, err := c.getJSON(ctx, cand.url, &prm)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			refusals = append(refusals, err)
			continue
		}
		if !found {
			continue
		}
		if !slices.Contains(cand.accept, prm.Resource) {
			refusals = append(refusals, refuse(cand.url, "RFC 9728 §3.3",
				"protected resource metadata at %s names resource %q, not %q", cand.url, prm.Resource, cand.accept[0]))
			continue
		}
		if len(prm.AuthorizationServers) == 0 {
			refusals = append(refusals, refuse(cand.url, "RFC 9728 §2; MCP authorization §Authorization Server Location",
				"protected resource metadata at %s lists no authorization_servers", cand.url))
			continue
		}
		d := &Discovery{
			ServerURL:            serverURL,
			Resource:             prm.Resource,
			ResourceMetadataURL:  cand.url,
			ScopesSupported:      prm.ScopesSupported,
			DPoPAlgs:             prm.DPOPSigningAlgValuesSupported,
			DPoPRequired:         prm.DPOPBoundAccessTokensRequired,
			AuthorizationServers: prm.AuthorizationServers,
			Challenge:            ch,
		}
		as, err := c.chooseAS(ctx, prm.AuthorizationServers)
		if err != nil {
			return nil, err
		}
		d.AS = as
		return d, nil
	}
	if len(refusals) > 0 {
		return nil, fmt.Errorf("no usable protected resource metadata: %w", errors.Join(refusals...))
	}

	// No PRM anywhere: a 2025-03-26 server (spec-checklist §M step 4).
	origin := su.Scheme + "://" + su.Host
	issuer := origin
	if opts.Issuer != "" {
		issuer = opts.Issuer
	}
	d := &Discovery{ServerURL: serverURL, Resource: serverURL, Challenge: ch}
	as, found, err := c.fetchAS(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoAuthServer, err)
	}
	if found {
		d.AS = as
		return d, nil
	}
	if issuer != origin {
		return nil, fmt.Errorf("%w: no metadata for configured issuer %s", ErrNoAuthServer, issuer)
	}
	// No metadata either: the 2025-03-26 default endpoints. PKCE cannot be
	// checked here; the flow uses S256 anyway (spec-checklist §M).
	log.Debug("oauth: no metadata, using 2025-03-26 default endpoints", "issuer", origin)
	d.AS = &AuthServer{
		Issuer:                origin,
		AuthorizationEndpoint: origin + "/authorize",
		TokenEndpoint:         origin + "/token",
		RegistrationEndpoint:  origin + "/register",
		Legacy:                true,
	}
	return d, nil
}

type discoverer struct {
	hc             *http.Client
	opts           DiscoverOptions
	log            *slog.Logger
	serverLoopback bool
}

type prmCandidate struct {
	url    string
	accept []string // resource values accepted for this URL; [0] is named in errors
}

// prmCandidates lists the PRM URLs in the spec's order, each with the
// resource identifiers it may name. A URL listed twice is fetched once, with
// the union of the accepted identifiers.
func prmCandidates(su *url.URL, serverURL string, ch *Challenge) []prmCandidate {
	origin := su.Scheme + "://" + su.Host
	var out []prmCandidate
	add := func(u string, accept ...string) {
		for i := range out {
			if out[i].url == u {
				for _, a := range accept {
					if !slices.Contains(out[i].accept, a) {
						out[i].accept = append(out[i].accept, a)
					}
				}
				return
			}
		}
		out = append(out, prmCandidate{url: u, accept: accept})
	}
	if ch != nil && ch.ResourceMetadata != "" {
		// RFC 9728 §3.3: identical to the URL the request went to.
		add(ch.ResourceMetadata, serverURL)
	}
	query := ""
	if su.RawQuery != "" {
		query = "?" + su.RawQuery
	}
	// RFC 9728 §3.1: insert the well-known segment between host and path; a
	// path of just "/" counts as none.
	if p := su.EscapedPath(); p != "" && p != "/" {
		add(origin+"/.well-known/oauth-protected-resource"+p+query, serverURL)
	}
	// The root document describes the origin. A server that names its
	// endpoint there instead is not naming anything foreign, so that is
	// accepted as well.
	add(origin+"/.well-known/oauth-protected-resource", origin, serverURL)
	return out
}

// chooseAS tries the PRM's authorization servers in order and returns the
// first whose metadata validates. Each is treated on its own: nothing learnt
// about one is used for another.
func (c *discoverer) chooseAS(ctx context.Context, servers []string) (*AuthServer, error) {
	var refusals []error
	tried := 0
	for _, issuer := range servers {
		if c.opts.Issuer != "" && issuer != c.opts.Issuer {
			continue
		}
		tried++
		as, found, err := c.fetchAS(ctx, issuer)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			refusals = append(refusals, err)
			continue
		}
		if !found {
			refusals = append(refusals, refuse(issuer, "RFC 8414 §3; MCP authorization §Authorization Server Metadata Discovery",
				"authorization server %s publishes no metadata", issuer))
			continue
		}
		return as, nil
	}
	if tried == 0 {
		return nil, fmt.Errorf("%w: configured issuer %s is not among the server's authorization_servers %q", ErrNoAuthServer, c.opts.Issuer, servers)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoAuthServer, errors.Join(refusals...))
}

// fetchAS tries issuer's metadata URLs in the spec's order. found is false
// when no URL had a document; a document that fails validation is skipped
// for the next URL, and its refusal is returned when none validates.
func (c *discoverer) fetchAS(ctx context.Context, issuer string) (*AuthServer, bool, error) {
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" || iu.User != nil {
		return nil, false, refuse(issuer, "RFC 8414 §2", "issuer %q is not a URL without query or fragment", issuer)
	}
	if err := c.checkNamedURL(issuer, "issuer"); err != nil {
		return nil, false, err
	}
	var refusals []error
	for _, mu := range asMetadataURLs(iu) {
		var as AuthServer
		found, err := c.getJSON(ctx, mu, &as)
		if err != nil {
			return nil, false, err
		}
		if !found {
			continue
		}
		if err := c.validateAS(mu, issuer, &as); err != nil {
			refusals = append(refusals, err)
			continue
		}
		return &as, true, nil
	}
	if len(refusals) > 0 {
		return nil, false, errors.Join(refusals...)
	}
	return nil, false, nil
}

// asMetadataURLs lists RFC 8414 and OpenID discovery URLs in the order of
// MCP 2025-11-25 (spec-checklist §C), after stripping a trailing "/" from
// the issuer path (RFC 8414 §3.1).
func asMetadataURLs(iu *url.URL) []string {
	origin := iu.Scheme + "://" + iu.Host
	p := strings.TrimSuffix(iu.EscapedPath(), "/")
	if p == "" {
		return []string{
			origin + "/.well-known/oauth-authorization-server",
			origin + "/.well-known/openid-configuration",
		}
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server" + p,
		origin + "/.well-known/openid-configuration" + p,
		origin + p + "/.well-known/openid-configuration",
	}
}

// validateAS applies RFC 8414 §3.3 and the PKCE rule to a fetched document.
func (c *discoverer) validateAS(metaURL, issuer string, as *AuthServer) error {
	// Exact string equality: no trailing-slash, case or port normalisation.
	if as.Issuer != issuer {
		return refuse(metaURL, "RFC 8414 §3.3",
			"authorization server metadata at %s names issuer %q, not %q", metaURL, as.Issuer, issuer)
	}
	if len(as.CodeChallengeMethodsSupported) == 0 {
		return refuse(metaURL, "MCP authorization §Authorization Code Protection",
			"authorization server metadata at %s lacks code_challenge_methods_supported, so PKCE support cannot be confirmed", metaURL)
	}
	if !slices.Contains(as.CodeChallengeMethodsSupported, "S256") {
		return refuse(metaURL, "OAuth 2.1 §4.1.1",
			"authorization server metadata at %s lists code_challenge_methods_supported %q without S256", metaURL, as.CodeChallengeMethodsSupported)
	}
	endpoints := []struct {
		name, value string
		required    bool
	}{
		{"authorization_endpoint", as.AuthorizationEndpoint, true},
		{"token_endpoint", as.TokenEndpoint, true},
		{"registration_endpoint", as.RegistrationEndpoint, false},
		{"revocation_endpoint", as.RevocationEndpoint, false},
		{"device_authorization_endpoint", as.DeviceAuthorizationEndpoint, false},
	}
	for _, e := range endpoints {
		if e.value == "" {
			if e.required {
				return refuse(metaURL, "RFC 8414 §2", "authorization server metadata at %s lacks %s", metaURL, e.name)
			}
			continue
		}
		u, err := url.Parse(e.value)
		if err != nil || u.Host == "" || u.Fragment != "" {
			return refuse(metaURL, "RFC 8414 §2", "authorization server metadata at %s has an invalid %s", metaURL, e.name)
		}
		if err := checkScheme(u); err != nil {
			return refuse(metaURL, "OAuth 2.1 §1.5; MCP authorization §Communication Security",
				"authorization server metadata at %s: %s %s is not https", metaURL, e.name, redactURL(u))
		}
		if err := c.checkNamedURL(e.value, e.name); err != nil {
			return err
		}
	}
	return nil
}

// checkNamedURL refuses a loopback URL named by a server that is not on
// loopback itself (an SSRF into local services), unless private networks
// are allowed.
func (c *discoverer) checkNamedURL(u, what string) error {
	if c.serverLoopback || c.opts.AllowPrivateNetwork || !isLoopbackURL(u) {
		return nil
	}
	return refuse(u, "MCP security best practices §Server-Side Request Forgery",
		"%s %s points to loopback but the MCP server is not on loopback (allow_private_network permits it)", what, u)
}

// getJSON GETs a metadata document into v. found is false for a 4xx answer
// or a 200 that is not JSON (an HTML catch-all page); any other failure is
// an error that names the URL.
func (c *discoverer) getJSON(ctx context.Context, u string, v any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("fetch %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("MCP-Protocol-Version", ProtocolVersion)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.log.Debug("oauth: metadata fetch failed", "url", u, "err", err)
		return false, err // a *url.Error: it names the URL
	}
	defer resp.Body.Close()
	c.log.Debug("oauth: metadata fetched", "url", u, "status", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return false, nil
	default:
		return false, fmt.Errorf("fetch %s: unexpected status %s", u, resp.Status)
	}
	body, err := ReadLimited(resp.Body, DefaultMaxBody*16) // the client's own cap applies first
	if err != nil {
		return false, fmt.Errorf("fetch %s: %w", u, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "application/json" || strings.HasSuffix(mt, "+json") {
			return false, fmt.Errorf("fetch %s: invalid JSON: %w", u, err)
		}
		return false, nil
	}
	return true, nil
}
