// Package oauthtest is an in-process OAuth 2.1 authorization server and MCP
// protected resource for mcpkey's Go tests, served by net/http/httptest on
// 127.0.0.1.
//
// It is strict where mcpkey must be exact, so tests fail when the client
// slips: PKCE S256 is required and verified, resource is required and
// compared byte-for-byte on the authorize, token and refresh requests,
// codes are single-use, refresh tokens rotate with reuse detection
// (replaying a spent one revokes the whole grant), and clients authenticate
// exactly by their registered method.
//
// What it serves (paths relative to Server.URL; IssuerPath prefixes the AS
// endpoints):
//
//	/.well-known/oauth-protected-resource{ResourcePath}  PRM, path-inserted (RFC 9728)
//	/.well-known/oauth-protected-resource                PRM at the root
//	/.well-known/oauth-authorization-server{IssuerPath}  AS metadata (RFC 8414)
//	/.well-known/openid-configuration{IssuerPath}        same document (with Options.OpenIDConfiguration)
//	{IssuerPath}/authorize                               auto-approves: 302 to redirect_uri with code, state, iss
//	{IssuerPath}/token                                   authorization_code, refresh_token, device_code, client_credentials
//	{IssuerPath}/register                                RFC 7591 dynamic client registration
//	{IssuerPath}/revoke                                  RFC 7009
//	{IssuerPath}/device_authorization                    RFC 8628
//	{ResourcePath}                                       the protected MCP endpoint: 401 + challenge, 403, or 200
//
// Access tokens are HS256 JWTs (typ at+jwt) whose aud is the resource the
// client sent, or opaque strings with Options.OpaqueTokens.
package oauthtest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/internal/dpopcheck"
)

// Options configure a Server. The zero value is a strict, spec-following AS
// on the server root with a protected resource at /mcp.
type Options struct {
	// IssuerPath is the path of the issuer ("" = the server root, else e.g.
	// "/tenant1" without trailing slash). The AS endpoints live under it.
	IssuerPath string
	// ResourcePath is the path of the protected MCP endpoint ("" = "/mcp").
	ResourcePath string
	// Resource overrides the PRM resource string (default: Server.URL +
	// ResourcePath). It is compared byte-for-byte with what clients send.
	Resource string
	// ScopesSupported is the PRM scopes_supported (nil = omitted).
	ScopesSupported []string
	// ASScopesSupported is the AS metadata scopes_supported (nil = omitted).
	ASScopesSupported []string
	// ChallengeScope is the scope parameter of the resource's 401
	// challenge ("" = none).
	ChallengeScope string
	// RequiredScopes makes the resource answer 403 insufficient_scope
	// (with scope = these) to a valid token that lacks any of them.
	RequiredScopes []string
	// NoPathPRM and NoRootPRM stop serving the path-inserted or root PRM.
	NoPathPRM, NoRootPRM bool
	// NoResourceMetadataInChallenge leaves resource_metadata out of the
	// 401 challenge.
	NoResourceMetadataInChallenge bool
	// OpenIDConfiguration also serves the metadata at the OIDC location.
	OpenIDConfiguration bool
	// IssParameterSupported advertises
	// authorization_response_iss_parameter_supported (RFC 9207).
	IssParameterSupported bool
	// AuthorizeIss is the iss /authorize puts in its redirect: "" = the
	// issuer, "-" = no iss at all, anything else is sent as is (mix-up tests).
	AuthorizeIss string
	// AuthorizeError makes /authorize redirect with this error code (and
	// AuthorizeErrorDescription) instead of a code.
	AuthorizeError, AuthorizeErrorDescription string
	// AccessTokenTTL is the access-token lifetime (0 = one hour). Negative
	// values issue already-expired tokens.
	AccessTokenTTL time.Duration
	// ExpiresIn, when non-nil, is sent as expires_in instead of the TTL in
	// seconds (e.g. 0 to test "expires_in: 0").
	ExpiresIn *int
	// OmitExpiresIn leaves expires_in out of token answers; the JWT still
	// has exp (unless OpaqueTokens).
	OmitExpiresIn bool
	// OmitScope leaves scope out of token answers.
	OmitScope bool
	// OpaqueTokens issues random opaque access tokens instead of JWTs.
	OpaqueTokens bool
	// NoRefreshTokens issues no refresh tokens.
	NoRefreshTokens bool
	// NoRotation answers refreshes without a new refresh token; the old one
	// stays valid.
	NoRotation bool
	// Clients are pre-registered clients.
	Clients []Client
	// DisableRegistration removes registration_endpoint from the metadata
	// and answers /register with 404.
	DisableRegistration bool
	// NoRevocation and NoDevice remove the revocation and device
	// authorization endpoints from the metadata (they answer 404).
	NoRevocation, NoDevice bool
	// DeviceResponses are the error codes /token answers successive device
	// polls with before it issues tokens, e.g. {"authorization_pending",
	// "slow_down"}. access_denied and expired_token are final.
	DeviceResponses []string
	// DeviceInterval and DeviceExpiresIn are the device answer's interval
	// and expires_in in seconds (0 = 5 and 600).
	DeviceInterval, DeviceExpiresIn int
	// Metadata and PRM, if set, edit the AS metadata and PRM documents
	// before they are served (negative discovery tests).
	Metadata func(m map[string]any)
	PRM      func(m map[string]any)
	// Now is the server's clock (nil = time.Now): token expiry, JWT iat and
	// exp, and the resource's expiry check.
	Now func() time.Time
	// ClientErrorPage makes /authorize answer a client_id it does not know
	// the way Ory Hydra does: a 302 to its own error page
	// ({IssuerPath}/error?error=invalid_client&…), not a 400.
	ClientErrorPage bool
	// DCRDefaultScopes, when non-nil, limits each dynamically registered
	// client to the scopes of its registration's "scope", or to these when
	// it sent none (Hydra's default_scope); /authorize answers
	// invalid_scope for any other scope.
	DCRDefaultScopes []string
	// RegistrationManagement gives dynamic registrations a
	// registration_client_uri ({IssuerPath}/register/{client_id}) and a
	// registration access token, and accepts RFC 7592 updates (PUT) there;
	// every update rotates the access token.
	RegistrationManagement bool

	// DPoP makes the AS offer DPoP (RFC 9449): dpop_signing_alg_values_supported
	// in its metadata; a token request with a valid proof gets a token
	// bound to the proof's key (token_type DPoP, cnf.jkt), and refreshes of
	// that grant must prove the same key. ASNonce, when set, is required in
	// token request proofs (use_dpop_nonce otherwise).
	DPoP    bool
	ASNonce string
	// ResourceDPoP makes the resource take key-bound tokens only: its
	// challenge uses the DPoP scheme, and each request must carry
	// "Authorization: DPoP" and a fresh proof (ath, cnf.jkt, no replay);
	// ResourceNonce, when set, is required in those proofs.
	ResourceDPoP  bool
	ResourceNonce string
}

// Fault is how the token endpoint answers refresh grants while set
// (SetRefreshFault): a status, content type and body, or a connection
// reset without an answer.
type Fault struct {
	Status      int
	ContentType string
	Body        string
	Reset       bool
}

// Client is a registered client.
type Client struct {
	ID, Secret string
	// AuthMethod is none, client_secret_basic or client_secret_post (""
	// = client_secret_basic with a secret, none without).
	AuthMethod string
	// RedirectURIs; nil accepts any http loopback redirect. Loopback
	// entries match on any port (RFC 8252 §7.3).
	RedirectURIs []string
	// Scopes, when non-nil, are all the scopes the client may ask for.
	Scopes  []string
	dynamic bool
	regTok  string // RFC 7592 registration access token
}

// TokenRequest is one request the token endpoint received.
type TokenRequest struct {
	Form url.Values
	// BasicID and BasicSecret are the decoded HTTP Basic credentials
	// (both "" without an Authorization header).
	BasicID, BasicSecret string
	HasBasic             bool
}

// Server is a running test authorization server and protected resource.
type Server struct {
	// HTTP is the underlying httptest server.
	HTTP *httptest.Server
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Issuer is URL + IssuerPath.
	Issuer string
	// Resource is the PRM resource string.
	Resource string
	// MCPURL is the protected endpoint's URL.
	MCPURL string
	// PRMURL is the path-inserted PRM URL (the challenge's resource_metadata).
	PRMURL string

	opts Options
	t    testing.TB
	key  []byte
	// asProofs and rsProofs check DPoP proofs at the token endpoint and
	// the resource; dpopTokenReqs and proofErrs record them (under mu).
	asProofs, rsProofs dpopcheck.Checker
	dpopTokenReqs      int
	proofErrs          []string

	mu         sync.Mutex // guards everything below
	clients    map[string]*Client
	codes      map[string]*codeState
	grants     map[string]*grant
	refresh    map[string]*refreshState
	access     map[string]*accessState // by access token
	devices    map[string]*deviceState
	counts     map[string]int
	refreshes  int
	tokenReqs  []TokenRequest
	authReqs   []url.Values
	regs       []map[string]any
	updates    []map[string]any
	revokes    []url.Values
	devPolls   []time.Time
	failStatus int
	fault      *Fault
	hold       *hold
	down       bool
	badGrant   bool
	seq        int
}

type codeState struct {
	clientID, redirectURI, challenge, resource string
	scopes                                     []string
	expires                                    time.Time
	used                                       bool
	grant                                      *grant
}

type grant struct {
	id, clientID, resource string
	jkt                    string // DPoP key the grant is bound to
	scopes                 []string
	revoked                bool
}

type refreshState struct {
	g    *grant
	used bool
}

type accessState struct {
	jkt     string // DPoP key the token is bound to ("" = bearer)
	g       *grant
	expires time.Time
	scopes  []string
	revoked bool
}

type deviceState struct {
	clientID, resource string
	scopes             []string
	polls              int
	final              string
}

// New starts a Server; it is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ResourcePath == "" {
		opts.ResourcePath = "/mcp"
	}
	s := &Server{
		asProofs: dpopcheck.Checker{Nonce: opts.ASNonce},
		rsProofs: dpopcheck.Checker{Nonce: opts.ResourceNonce},
		opts:     opts,
		t:        t,
		key:      randomBytes(32),
		clients:  map[string]*Client{},
		codes:    map[string]*codeState{},
		grants:   map[string]*grant{},
		refresh:  map[string]*refreshState{},
		access:   map[string]*accessState{},
		devices:  map[string]*deviceState{},
		counts:   map[string]int{},
	}
	for i := range opts.Clients {
		c := opts.Clients[i]
		s.clients[c.ID] = &c
	}
	mux := http.NewServeMux()
	ip := opts.IssuerPath
	if !opts.NoPathPRM {
		mux.HandleFunc("/.well-known/oauth-protected-resource"+opts.ResourcePath, s.servePRM)
	}
	if !opts.NoRootPRM {
		mux.HandleFunc("/.well-known/oauth-protected-resource", s.servePRM)
	}
	mux.HandleFunc("/.well-known/oauth-authorization-server"+ip, s.serveMetadata)
	if opts.OpenIDConfiguration {
		mux.HandleFunc("/.well-known/openid-configuration"+ip, s.serveMetadata)
	}
	mux.HandleFunc(ip+"/authorize", s.serveAuthorize)
	mux.HandleFunc(ip+"/error", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<h1>An error occurred</h1>") // the browser stays here: nothing reaches the callback
	})
	mux.HandleFunc(ip+"/token", s.serveToken)
	if !opts.DisableRegistration {
		mux.HandleFunc(ip+"/register", s.serveRegister)
		mux.HandleFunc(ip+"/register/{id}", s.serveRegistrationUpdate)
	}
	if !opts.NoRevocation {
		mux.HandleFunc(ip+"/revoke", s.serveRevoke)
	}
	if !opts.NoDevice {
		mux.HandleFunc(ip+"/device_authorization", s.serveDeviceAuthorization)
	}
	mux.HandleFunc(opts.ResourcePath, s.serveMCP)
	// Every field is set before the server starts: its handlers read them,
	// and a client in another process gives the race detector no
	// happens-before edge to the assignments.
	s.HTTP = httptest.NewUnstartedServer(s.wrap(mux))
	s.URL = "http://" + s.HTTP.Listener.Addr().String()
	s.Issuer = s.URL + ip
	s.Resource = opts.Resource
	if s.Resource == "" {
		s.Resource = s.URL + opts.ResourcePath
	}
	s.MCPURL = s.URL + opts.ResourcePath
	s.PRMURL = s.URL + "/.well-known/oauth-protected-resource" + opts.ResourcePath
	s.HTTP.Start()
	t.Cleanup(s.HTTP.Close)
	return s
}

// wrap counts requests and plays dead when SetDown(true).
func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		down := s.down
		s.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// ---- knobs and counters ----

// SetTokenFailure makes /token answer every request with status (e.g. 500,
// 503, 429) and error server_error; 0 restores normal service.
func (s *Server) SetTokenFailure(status int) { s.mu.Lock(); s.failStatus = status; s.mu.Unlock() }

// SetDown makes every endpoint drop the connection without an answer (a
// network error at the client) while down is true.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// SetRefreshFault makes /token answer every refresh grant with f (counted
// in Refreshes); nil restores normal service.
func (s *Server) SetRefreshFault(f *Fault) { s.mu.Lock(); s.fault = f; s.mu.Unlock() }

// hold keeps refresh requests waiting (HoldRefreshes).
type hold struct {
	entered chan struct{}
	release chan struct{}
}

// HoldRefreshes makes the next refresh requests wait, before the server
// looks at them, until release is called; entered receives once per request
// that arrived and waits.
func (s *Server) HoldRefreshes() (entered <-chan struct{}, release func()) {
	h := &hold{entered: make(chan struct{}, 16), release: make(chan struct{})}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	var once sync.Once
	return h.entered, func() {
		once.Do(func() {
			s.mu.Lock()
			s.hold = nil
			s.mu.Unlock()
			close(h.release)
		})
	}
}

// ForgetClients forgets every dynamically registered client, as an
// authorization server with an in-memory database does when it restarts.
func (s *Server) ForgetClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.clients {
		if c.dynamic {
			delete(s.clients, id)
		}
	}
}

// ForceInvalidGrant makes every refresh answer invalid_grant while on.
func (s *Server) ForceInvalidGrant(on bool) { s.mu.Lock(); s.badGrant = on; s.mu.Unlock() }

// RevokeAll revokes every grant, as a remote logout would.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.grants {
		g.revoked = true
	}
}

// Refreshes is the number of refresh_token grant requests received (whatever
// their outcome, including forced failures).
func (s *Server) Refreshes() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refreshes }

// Requests is the number of requests received for path (e.g. "/token").
func (s *Server) Requests(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.counts[path] }

// ActiveGrants is the number of grants not revoked.
func (s *Server) ActiveGrants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.grants {
		if !g.revoked {
			n++
		}
	}
	return n
}

// TokenRequests returns the token endpoint's requests, oldest first.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenReqs)
}

// AuthorizeRequests returns the query of each /authorize request.
func (s *Server) AuthorizeRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authReqs)
}

// Registrations returns each /register request body.
func (s *Server) Registrations() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.regs)
}

// Revocations returns each /revoke request form.
func (s *Server) Revocations() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revokes)
}

// DevicePolls returns the server-clock times of device-code token requests.
func (s *Server) DevicePolls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.devPolls)
}

// AddClient registers c and returns it as the oauth.Client mcpkey would hold.
func (s *Server) AddClient(c Client) *oauth.Client {
	s.mu.Lock()
	s.clients[c.ID] = &c
	s.mu.Unlock()
	return &oauth.Client{
		Issuer:                  s.Issuer,
		ClientID:                c.ID,
		ClientSecret:            c.Secret,
		TokenEndpointAuthMethod: methodOf(&c),
		RedirectURIs:            c.RedirectURIs,
		Source:                  "preregistered",
	}
}

// AuthServer is the server's metadata as discovery would return it.
func (s *Server) AuthServer() *oauth.AuthServer {
	b, err := json.Marshal(s.metadata())
	if err != nil {
		s.t.Fatalf("oauthtest: %v", err)
	}
	var as oauth.AuthServer
	if err := json.Unmarshal(b, &as); err != nil {
		s.t.Fatalf("oauthtest: %v", err)
	}
	return &as
}

// Browser returns an auto-approving browser (an Opener): it GETs the URL in
// a goroutine, following the /authorize redirect to the loopback callback,
// like a user who clicks "allow". It refuses non-http(s) URLs.
func (s *Server) Browser() func(ctx context.Context, url string) error {
	return func(_ context.Context, u string) error {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("oauthtest browser: refusing %q", u)
		}
		ctx := context.Background()
		if tc, ok := s.t.(interface{ Context() context.Context }); ok {
			ctx = tc.Context()
		}
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		return nil
	}
}

// ValidAccessToken reports whether the resource would accept tok.
func (s *Server) ValidAccessToken(tok string) bool {
	_, ok := s.checkAccess(tok)
	return ok
}

// ---- metadata ----

func (s *Server) metadata() map[string]any {
	ip := s.Issuer
	m := map[string]any{
		"issuer":                           s.Issuer,
		"authorization_endpoint":           ip + "/authorize",
		"token_endpoint":                   ip + "/token",
		"response_types_supported":         []string{"code"},
		"grant_types_supported":            []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{
			"none", "client_secret_basic", "client_secret_post"},
	}
	if !s.opts.DisableRegistration {
		m["registration_endpoint"] = ip + "/register"
	}
	if !s.opts.NoRevocation {
		m["revocation_endpoint"] = ip + "/revoke"
	}
	if !s.opts.NoDevice {
		m["device_authorization_endpoint"] = ip + "/device_authorization"
	}
	if s.opts.ASScopesSupported != nil {
		m["scopes_supported"] = s.opts.ASScopesSupported
	}
	if s.opts.IssParameterSupported {
		m["authorization_response_iss_parameter_supported"] = true
	}
	if s.opts.DPoP {
		m["dpop_signing_alg_values_supported"] = []string{"ES256"}
	}
	if s.opts.Metadata != nil {
		s.opts.Metadata(m)
	}
	return m
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.metadata())
}

func (s *Server) servePRM(w http.ResponseWriter, r *http.Request) {
	m := map[string]any{
		"resource":                 s.Resource,
		"authorization_servers":    []string{s.Issuer},
		"bearer_methods_supported": []string{"header"},
	}
	if s.opts.ScopesSupported != nil {
		m["scopes_supported"] = s.opts.ScopesSupported
	}
	if s.opts.PRM != nil {
		s.opts.PRM(m)
	}
	writeJSON(w, http.StatusOK, m)
}

// ---- authorization endpoint ----

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.authReqs = append(s.authReqs, q)
	c := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	if c == nil {
		if s.opts.ClientErrorPage {
			http.Redirect(w, r, s.Issuer+"/error?error=invalid_client&error_description=Client+authentication+failed", http.StatusFound)
			return
		}
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if redirect == "" || err != nil || !redirectAllowed(c, ru) {
		http.Error(w, "redirect_uri not registered for this client", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		rq := ru.Query()
		for k, v := range params {
			rq[k] = v
		}
		if st := q.Get("state"); st != "" {
			rq.Set("state", st)
		}
		switch s.opts.AuthorizeIss {
		case "":
			rq.Set("iss", s.Issuer)
		case "-":
		default:
			rq.Set("iss", s.opts.AuthorizeIss)
		}
		u := *ru
		u.RawQuery = rq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) { back(url.Values{"error": {code}, "error_description": {desc}}) }
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code")
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		fail("invalid_request", "PKCE with S256 is required")
		return
	case len(q["resource"]) != 1:
		fail("invalid_target", "exactly one resource parameter is required")
		return
	case q.Get("resource") != s.Resource:
		fail("invalid_target", "unknown resource")
		return
	case s.opts.AuthorizeError != "":
		fail(s.opts.AuthorizeError, s.opts.AuthorizeErrorDescription)
		return
	}
	if c.Scopes != nil {
		for _, sc := range strings.Fields(q.Get("scope")) {
			if !slices.Contains(c.Scopes, sc) {
				fail("invalid_scope", "the client is not allowed to request scope "+sc)
				return
			}
		}
	}
	code := randomString()
	s.mu.Lock()
	s.codes[code] = &codeState{
		clientID:    c.ID,
		redirectURI: redirect,
		challenge:   q.Get("code_challenge"),
		resource:    q.Get("resource"),
		scopes:      strings.Fields(q.Get("scope")),
		expires:     s.now().Add(time.Minute),
	}
	s.mu.Unlock()
	back(url.Values{"code": {code}})
}

// redirectAllowed: registered URIs match exactly, or on any port for http
// loopback ones (RFC 8252 §7.3); no registered URIs = any http loopback.
func redirectAllowed(c *Client, u *url.URL) bool {
	loopback := u.Scheme == "http" && isLoopback(u.Hostname())
	if len(c.RedirectURIs) == 0 {
		return loopback
	}
	for _, reg := range c.RedirectURIs {
		if reg == u.String() {
			return true
		}
		ru, err := url.Parse(reg)
		if err == nil && loopback && ru.Scheme == "http" && ru.Hostname() == u.Hostname() &&
			ru.Path == u.Path && isLoopback(ru.Hostname()) {
			return true
		}
	}
	return false
}

func isLoopback(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// ---- token endpoint ----

type oauthErr struct {
	status     int
	code, desc string
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeErr(w, oauthErr{400, "invalid_request", "bad form"})
		return
	}
	tr := clientRequest(r)
	if r.PostForm.Get("grant_type") == "refresh_token" {
		s.mu.Lock()
		h := s.hold
		s.mu.Unlock()
		if h != nil {
			h.entered <- struct{}{}
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenReqs = append(s.tokenReqs, tr)
	gt := r.PostForm.Get("grant_type")
	if gt == "refresh_token" {
		s.refreshes++
		if f := s.fault; f != nil {
			if f.Reset {
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						if tc, ok := c.(*net.TCPConn); ok {
							tc.SetLinger(0) // RST, not FIN
						}
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
			if f.ContentType != "" {
				w.Header().Set("Content-Type", f.ContentType)
			}
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
	}
	if s.failStatus != 0 {
		writeErr(w, oauthErr{s.failStatus, "server_error", "the token endpoint is failing on purpose"})
		return
	}
	c, oe := s.authenticateLocked(tr)
	if oe != nil {
		writeErr(w, *oe)
		return
	}
	jkt, oe := s.tokenProofLocked(w, r)
	if oe != nil {
		writeErr(w, *oe)
		return
	}
	var body map[string]any
	switch gt {
	case "authorization_code":
		body, oe = s.codeGrantLocked(c, r.PostForm, jkt)
	case "refresh_token":
		body, oe = s.refreshGrantLocked(c, r.PostForm, jkt)
	case "urn:ietf:params:oauth:grant-type:device_code":
		body, oe = s.deviceGrantLocked(c, r.PostForm, jkt)
	case "client_credentials":
		body, oe = s.clientCredentialsLocked(c, r.PostForm)
	default:
		oe = &oauthErr{400, "unsupported_grant_type", ""}
	}
	if oe != nil {
		writeErr(w, *oe)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// authenticateLocked checks client credentials against the registered
// method: none sends only client_id in the body, client_secret_post the
// secret in the body, client_secret_basic HTTP Basic.
func (s *Server) authenticateLocked(tr TokenRequest) (*Client, *oauthErr) {
	bad := &oauthErr{401, "invalid_client", "client authentication failed"}
	id := tr.Form.Get("client_id")
	if tr.HasBasic {
		if id != "" && id != tr.BasicID {
			return nil, bad
		}
		id = tr.BasicID
	}
	c := s.clients[id]
	if c == nil {
		return nil, bad
	}
	formSecret, hasFormSecret := tr.Form["client_secret"]
	switch methodOf(c) {
	case "none":
		if tr.HasBasic || hasFormSecret {
			return nil, bad
		}
	case "client_secret_post":
		if tr.HasBasic || !hasFormSecret || !equal(formSecret[0], c.Secret) {
			return nil, bad
		}
	case "client_secret_basic":
		if !tr.HasBasic || hasFormSecret || !equal(tr.BasicSecret, c.Secret) {
			return nil, bad
		}
	}
	return c, nil
}

func (s *Server) codeGrantLocked(c *Client, f url.Values, jkt string) (map[string]any, *oauthErr) {
	cs := s.codes[f.Get("code")]
	if cs == nil || cs.clientID != c.ID || s.now().After(cs.expires) {
		return nil, &oauthErr{400, "invalid_grant", "unknown or expired code"}
	}
	if cs.used { // RFC 6749 §4.1.2: a replayed code revokes what it issued
		if cs.grant != nil {
			cs.grant.revoked = true
		}
		return nil, &oauthErr{400, "invalid_grant", "code already used"}
	}
	cs.used = true
	if f.Get("redirect_uri") != cs.redirectURI {
		return nil, &oauthErr{400, "invalid_grant", "redirect_uri does not match the authorization request"}
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if f.Get("code_verifier") == "" || !equal(base64.RawURLEncoding.EncodeToString(sum[:]), cs.challenge) {
		return nil, &oauthErr{400, "invalid_grant", "PKCE verification failed"}
	}
	if len(f["resource"]) != 1 || f.Get("resource") != cs.resource {
		return nil, &oauthErr{400, "invalid_target", "resource differs from the authorization request"}
	}
	g := &grant{id: randomString(), clientID: c.ID, resource: cs.resource, scopes: cs.scopes, jkt: jkt}
	s.grants[g.id] = g
	cs.grant = g
	return s.issueLocked(g, g.scopes, true), nil
}

func (s *Server) refreshGrantLocked(c *Client, f url.Values, jkt string) (map[string]any, *oauthErr) {
	if s.badGrant {
		return nil, &oauthErr{400, "invalid_grant", "forced by the test"}
	}
	rs := s.refresh[f.Get("refresh_token")]
	if rs == nil || rs.g.clientID != c.ID {
		return nil, &oauthErr{400, "invalid_grant", "unknown refresh token"}
	}
	if rs.used {
		rs.g.revoked = true // reuse detection: the whole grant dies
		return nil, &oauthErr{400, "invalid_grant", "refresh token reuse detected; grant revoked"}
	}
	if rs.g.revoked {
		return nil, &oauthErr{400, "invalid_grant", "grant revoked"}
	}
	if rs.g.jkt != "" && jkt != rs.g.jkt { // RFC 9449 §5: bound refresh tokens
		return nil, &oauthErr{400, "invalid_dpop_proof", "the refresh token is bound to another DPoP key"}
	}
	if len(f["resource"]) != 1 || f.Get("resource") != rs.g.resource {
		return nil, &oauthErr{400, "invalid_target", "resource differs from the grant's"}
	}
	scopes := rs.g.scopes
	if sc := f.Get("scope"); sc != "" {
		scopes = strings.Fields(sc)
		for _, x := range scopes {
			if !slices.Contains(rs.g.scopes, x) {
				return nil, &oauthErr{400, "invalid_scope", "scope exceeds the grant"}
			}
		}
	}
	rotate := !s.opts.NoRotation
	if rotate {
		rs.used = true
	}
	return s.issueLocked(rs.g, scopes, rotate), nil
}

func (s *Server) deviceGrantLocked(c *Client, f url.Values, jkt string) (map[string]any, *oauthErr) {
	d := s.devices[f.Get("device_code")]
	if d == nil || d.clientID != c.ID {
		return nil, &oauthErr{400, "invalid_grant", "unknown device code"}
	}
	s.devPolls = append(s.devPolls, s.now())
	if d.final != "" {
		return nil, &oauthErr{400, d.final, ""}
	}
	if d.polls < len(s.opts.DeviceResponses) {
		code := s.opts.DeviceResponses[d.polls]
		d.polls++
		if code == "access_denied" || code == "expired_token" {
			d.final = code
		}
		return nil, &oauthErr{400, code, ""}
	}
	if len(f["resource"]) != 1 || f.Get("resource") != d.resource {
		return nil, &oauthErr{400, "invalid_target", "resource differs from the device request"}
	}
	delete(s.devices, f.Get("device_code"))
	g := &grant{id: randomString(), clientID: c.ID, resource: d.resource, scopes: d.scopes, jkt: jkt}
	s.grants[g.id] = g
	return s.issueLocked(g, g.scopes, true), nil
}

// clientCredentialsLocked serves the client_credentials grant: a token
// for the client itself, for the one resource it names, and no refresh
// token (RFC 6749 §4.4.3).
func (s *Server) clientCredentialsLocked(c *Client, f url.Values) (map[string]any, *oauthErr) {
	if methodOf(c) == "none" {
		return nil, &oauthErr{400, "unauthorized_client", "a public client cannot use client_credentials"}
	}
	if len(f["resource"]) != 1 || f.Get("resource") == "" {
		return nil, &oauthErr{400, "invalid_target", "exactly one resource is required"}
	}
	g := &grant{id: randomString(), clientID: c.ID, resource: f.Get("resource"), scopes: strings.Fields(f.Get("scope"))}
	s.grants[g.id] = g
	return s.issueLocked(g, g.scopes, false), nil
}

// issueLocked mints an access token (and a refresh token when withRefresh
// and refresh tokens are on) for g.
func (s *Server) issueLocked(g *grant, scopes []string, withRefresh bool) map[string]any {
	ttl := s.opts.AccessTokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	now := s.now()
	exp := now.Add(ttl)
	s.seq++
	var at string
	if s.opts.OpaqueTokens {
		at = randomString()
	} else {
		at = s.signJWT(map[string]any{
			"iss": s.Issuer, "sub": "user", "aud": g.resource, "client_id": g.clientID,
			"scope": strings.Join(scopes, " "), "iat": now.Unix(), "exp": exp.Unix(),
			"jti": fmt.Sprintf("%s.%d", g.id, s.seq), "cnf": cnf(g.jkt),
		})
	}
	s.access[at] = &accessState{g: g, expires: exp, scopes: scopes, jkt: g.jkt}
	body := map[string]any{"access_token": at, "token_type": "Bearer"}
	if g.jkt != "" {
		body["token_type"] = "DPoP"
	}
	switch {
	case s.opts.ExpiresIn != nil:
		body["expires_in"] = *s.opts.ExpiresIn
	case !s.opts.OmitExpiresIn:
		body["expires_in"] = int(ttl / time.Second)
	}
	if !s.opts.OmitScope && len(scopes) > 0 {
		body["scope"] = strings.Join(scopes, " ")
	}
	if withRefresh && !s.opts.NoRefreshTokens {
		rt := randomString()
		s.refresh[rt] = &refreshState{g: g}
		body["refresh_token"] = rt
	}
	return body
}

// Grant creates a grant for clientID with scopes as if a login had just
// happened, and returns its access and refresh tokens.
func (s *Server) Grant(clientID string, scopes []string) (access, refresh string) {
	return s.GrantBound(clientID, scopes, "")
}

// GrantBound is Grant for a grant bound to the DPoP key with thumbprint jkt
// ("" = a bearer grant).
func (s *Server) GrantBound(clientID string, scopes []string, jkt string) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &grant{id: randomString(), clientID: clientID, resource: s.Resource, scopes: scopes, jkt: jkt}
	s.grants[g.id] = g
	body := s.issueLocked(g, scopes, true)
	rt, _ := body["refresh_token"].(string)
	return body["access_token"].(string), rt
}

// ---- registration, revocation, device authorization ----

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var req map[string]any
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeErr(w, oauthErr{400, "invalid_client_metadata", "body is not JSON"})
		return
	}
	c := &Client{ID: "dcr-" + randomString(), dynamic: true}
	s.applyScope(c, req)
	if m, _ := req["token_endpoint_auth_method"].(string); m != "" {
		c.AuthMethod = m
	} else {
		c.AuthMethod = "client_secret_basic" // RFC 7591 §2 default
	}
	switch c.AuthMethod {
	case "none":
	case "client_secret_basic", "client_secret_post":
		c.Secret = randomString()
	default:
		writeErr(w, oauthErr{400, "invalid_client_metadata", "unsupported token_endpoint_auth_method"})
		return
	}
	uris, _ := req["redirect_uris"].([]any)
	for _, u := range uris {
		str, _ := u.(string)
		pu, err := url.Parse(str)
		if err != nil || pu.Host == "" || pu.Fragment != "" {
			writeErr(w, oauthErr{400, "invalid_redirect_uri", "bad redirect uri"})
			return
		}
		c.RedirectURIs = append(c.RedirectURIs, str)
	}
	if len(c.RedirectURIs) == 0 {
		writeErr(w, oauthErr{400, "invalid_redirect_uri", "redirect_uris required"})
		return
	}
	s.mu.Lock()
	s.regs = append(s.regs, req)
	s.clients[c.ID] = c
	s.mu.Unlock()
	resp := map[string]any{}
	for k, v := range req {
		resp[k] = v
	}
	resp["client_id"] = c.ID
	resp["client_id_issued_at"] = s.now().Unix()
	if s.opts.RegistrationManagement {
		c.regTok = randomString()
		resp["registration_client_uri"] = s.Issuer + "/register/" + c.ID
		resp["registration_access_token"] = c.regTok
	}
	resp["token_endpoint_auth_method"] = c.AuthMethod
	if c.Secret != "" {
		resp["client_secret"] = c.Secret
		resp["client_secret_expires_at"] = 0
	}
	writeJSON(w, http.StatusCreated, resp)
}

// applyScope limits c to the registration's scope (DCRDefaultScopes).
func (s *Server) applyScope(c *Client, req map[string]any) {
	if s.opts.DCRDefaultScopes == nil {
		return
	}
	c.Scopes = slices.Clone(s.opts.DCRDefaultScopes)
	if sc, _ := req["scope"].(string); sc != "" {
		c.Scopes = strings.Fields(sc)
	}
}

// serveRegistrationUpdate is RFC 7592 §2.2: PUT the client's metadata with
// its registration access token.
func (s *Server) serveRegistrationUpdate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[r.PathValue("id")]
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.opts.RegistrationManagement || c == nil || !c.dynamic || c.regTok == "" || !equal(tok, c.regTok) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	var req map[string]any
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req["client_id"] != c.ID {
		writeErr(w, oauthErr{400, "invalid_client_metadata", "body is not JSON with this client_id"})
		return
	}
	s.updates = append(s.updates, req)
	s.applyScope(c, req)
	c.regTok = randomString()
	resp := map[string]any{}
	for k, v := range req {
		resp[k] = v
	}
	resp["token_endpoint_auth_method"] = c.AuthMethod
	resp["registration_client_uri"] = s.Issuer + "/register/" + c.ID
	resp["registration_access_token"] = c.regTok
	if c.Secret != "" {
		resp["client_secret"] = c.Secret
	}
	writeJSON(w, http.StatusOK, resp)
}

// RegistrationUpdates returns the RFC 7592 update requests, oldest first.
func (s *Server) RegistrationUpdates() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates)
}

// clientRequest reads a parsed form request's client credentials: the form
// and the decoded HTTP Basic pair (RFC 6749 §2.3.1 form-encodes both parts).
func clientRequest(r *http.Request) TokenRequest {
	tr := TokenRequest{Form: r.PostForm}
	if id, sec, ok := r.BasicAuth(); ok {
		tr.HasBasic = true
		tr.BasicID, _ = url.QueryUnescape(id)
		tr.BasicSecret, _ = url.QueryUnescape(sec)
	}
	return tr
}

func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeErr(w, oauthErr{400, "invalid_request", ""})
		return
	}
	tr := clientRequest(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokes = append(s.revokes, r.PostForm)
	c, oe := s.authenticateLocked(tr)
	if oe != nil {
		writeErr(w, *oe)
		return
	}
	tok := r.PostForm.Get("token")
	if rs := s.refresh[tok]; rs != nil && rs.g.clientID == c.ID {
		rs.g.revoked = true // RFC 7009 §2.1: revoking a refresh token ends the grant
	}
	if as := s.access[tok]; as != nil && as.g.clientID == c.ID {
		as.revoked = true
	}
	w.WriteHeader(http.StatusOK) // also for unknown tokens (RFC 7009 §2.2)
}

func (s *Server) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeErr(w, oauthErr{400, "invalid_request", ""})
		return
	}
	tr := clientRequest(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, oe := s.authenticateLocked(tr)
	if oe != nil {
		writeErr(w, *oe)
		return
	}
	if len(r.PostForm["resource"]) != 1 || r.PostForm.Get("resource") != s.Resource {
		writeErr(w, oauthErr{400, "invalid_target", "unknown resource"})
		return
	}
	dc := randomString()
	s.devices[dc] = &deviceState{clientID: c.ID, resource: s.Resource, scopes: strings.Fields(r.PostForm.Get("scope"))}
	interval, expires := s.opts.DeviceInterval, s.opts.DeviceExpiresIn
	if interval == 0 {
		interval = 5
	}
	if expires == 0 {
		expires = 600
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               dc,
		"user_code":                 "WDJB-MJHT",
		"verification_uri":          s.Issuer + "/device",
		"verification_uri_complete": s.Issuer + "/device?user_code=WDJB-MJHT",
		"expires_in":                expires,
		"interval":                  interval,
	})
}

// ---- the protected resource ----

func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	challenge := func(extra string) string {
		parts := []string{}
		if extra != "" {
			parts = append(parts, extra)
		}
		if !s.opts.NoResourceMetadataInChallenge {
			parts = append(parts, fmt.Sprintf("resource_metadata=%q", s.PRMURL))
		}
		if s.opts.ChallengeScope != "" {
			parts = append(parts, fmt.Sprintf("scope=%q", s.opts.ChallengeScope))
		}
		scheme := "Bearer "
		if s.opts.ResourceDPoP {
			scheme = "DPoP "
			parts = append(parts, `algs="ES256"`)
		}
		return strings.TrimSpace(scheme + strings.Join(parts, ", "))
	}
	auth := r.Header.Get("Authorization")
	scheme := "Bearer "
	if s.opts.ResourceDPoP {
		scheme = "DPoP "
	}
	tok, ok := strings.CutPrefix(auth, scheme)
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", challenge(""))
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized"})
		return
	}
	st, ok := s.checkAccess(tok)
	if !ok {
		w.Header().Set("WWW-Authenticate", challenge(`error="invalid_token"`))
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token"})
		return
	}
	if s.opts.ResourceDPoP {
		if st.jkt == "" { // a bearer token where a key-bound one is required
			w.Header().Set("WWW-Authenticate", challenge(`error="invalid_token"`))
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token"})
			return
		}
		_, err := s.rsProofs.Check(r.Header.Get("DPoP"), r.Method, s.MCPURL, tok, st.jkt)
		switch {
		case errors.Is(err, dpopcheck.ErrUseNonce):
			w.Header().Set("DPoP-Nonce", s.opts.ResourceNonce)
			w.Header().Set("WWW-Authenticate", challenge(`error="use_dpop_nonce"`))
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "use_dpop_nonce"})
			return
		case err != nil:
			s.mu.Lock()
			s.proofErrs = append(s.proofErrs, err.Error())
			s.mu.Unlock()
			w.Header().Set("WWW-Authenticate", challenge(`error="invalid_dpop_proof"`))
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_dpop_proof"})
			return
		}
	}
	for _, need := range s.opts.RequiredScopes {
		if !slices.Contains(st.scopes, need) {
			h := fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`,
				strings.Join(s.opts.RequiredScopes, " "), s.PRMURL)
			w.Header().Set("WWW-Authenticate", h)
			writeJSON(w, http.StatusForbidden, map[string]any{"error": "insufficient_scope"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{}})
}

// checkAccess verifies tok: known, signature (JWT), unexpired on the
// server clock, aud = the resource, neither it nor its grant revoked.
func (s *Server) checkAccess(tok string) (accessState, bool) {
	if !s.opts.OpaqueTokens {
		claims, ok := s.verifyJWT(tok)
		if !ok || claims["aud"] != s.Resource {
			return accessState{}, false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.access[tok]
	if st == nil || st.revoked || st.g.revoked || !s.now().Before(st.expires) || st.g.resource != s.Resource {
		return accessState{}, false
	}
	return *st, true
}

// ---- DPoP ----

// tokenProofLocked checks a token request's DPoP proof, if any, and returns
// its key's thumbprint ("" without a proof, or when DPoP is off: then the
// header is ignored, as an AS without DPoP does).
func (s *Server) tokenProofLocked(w http.ResponseWriter, r *http.Request) (string, *oauthErr) {
	proof := r.Header.Get("DPoP")
	if !s.opts.DPoP || proof == "" {
		return "", nil
	}
	s.dpopTokenReqs++
	p, err := s.asProofs.Check(proof, r.Method, s.Issuer+"/token", "", "")
	switch {
	case errors.Is(err, dpopcheck.ErrUseNonce):
		w.Header().Set("DPoP-Nonce", s.opts.ASNonce)
		return "", &oauthErr{400, "use_dpop_nonce", "a DPoP nonce is required"}
	case err != nil:
		s.proofErrs = append(s.proofErrs, err.Error())
		return "", &oauthErr{400, "invalid_dpop_proof", err.Error()}
	}
	return p.JKT, nil
}

// DPoPTokenRequests counts token requests that carried a DPoP proof.
func (s *Server) DPoPTokenRequests() int { s.mu.Lock(); defer s.mu.Unlock(); return s.dpopTokenReqs }

// ProofErrors lists why proofs were refused, in order.
func (s *Server) ProofErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.proofErrs)
}

// BoundKey returns the cnf.jkt access token tok is bound to ("" = bearer).
func (s *Server) BoundKey(tok string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.access[tok]; st != nil {
		return st.jkt
	}
	return ""
}

// cnf is an access token's cnf claim (RFC 9449 §6.1); {} for bearer.
func cnf(jkt string) map[string]string {
	if jkt == "" {
		return map[string]string{}
	}
	return map[string]string{"jkt": jkt}
}

// ---- helpers ----

func (s *Server) signJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "at+jwt"})
	p, _ := json.Marshal(claims)
	msg := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

func (s *Server) verifyJWT(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		return nil, false
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(p, &claims) != nil {
		return nil, false
	}
	return claims, true
}

func methodOf(c *Client) string {
	if c.AuthMethod != "" {
		return c.AuthMethod
	}
	if c.Secret != "" {
		return "client_secret_basic"
	}
	return "none"
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, e oauthErr) {
	body := map[string]any{"error": e.code}
	if e.desc != "" {
		body["error_description"] = e.desc
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauthtest"`)
	}
	writeJSON(w, e.status, body)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randomString() string { return base64.RawURLEncoding.EncodeToString(randomBytes(24)) }
