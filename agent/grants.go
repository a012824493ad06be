package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/internal/wipe"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/api"
)

// Grants without a browser (issue 15 §2–§4): client credentials, workload
// identity federation (JWT bearer) and enterprise-managed authorization
// (token exchange at the IdP, then JWT bearer). Such a session has no
// refresh token: when its token nears expiry the agent runs the grant
// again, through the same single refresher as a refresh (startRefreshLocked
// → refresh → regrant), so however many callers ask, one grant runs.

// grantSpec is one grant, resolved: where each credential came from is
// settled, the secrets are read.
type grantSpec struct {
	mode     string
	clientID string
	secret   string // client_secret_basic
	keyPEM   string // private_key_jwt signing key
	keyAlg   string
	// assertionFile / assertionEnv: the workload token, read per grant.
	assertionFile, assertionEnv string
	idp                         string
	// person is set for a login: the IdP's browser sign-in may run.
	person *grantPerson
}

// grantFor resolves the grant of a login (req) or of a renewal (zero req,
// prev the session's record): the request's choice, else the server's
// config, else what the session was created with. mode "" is the browser
// sign-in. A credential is taken from the same places in that order, so a
// rotated secret file in the config is read at the next grant.
func grantFor(ctx context.Context, st store.Store, t target, req LoginRequest, prev *store.SessionRecord) (grantSpec, error) {
	cfg := t.settings.GrantSettings
	var old store.Grant
	if prev != nil {
		old = prev.Grant
	}
	g := grantSpec{mode: cmp.Or(req.Grant.Mode, cfg.Grant, old.Mode)}
	if g.mode == "" || g.mode == "authorization_code" { // --grant authorization_code: the browser, whatever the session had
		return grantSpec{}, nil
	}
	if !slices.Contains(api.Grants(), g.mode) {
		return g, fmt.Errorf("%w: unknown grant %q (expected one of %s)", ErrInvalidRequest, g.mode, strings.Join(api.Grants()[1:], ", "))
	}
	g.clientID = cmp.Or(req.ClientID, t.settings.ClientID)
	if g.clientID == "" && prev != nil {
		g.clientID = prev.ClientID
	}
	if g.clientID == "" {
		return g, fmt.Errorf("%w: the %s grant needs a client id (--client-id, or client_id in the config)", ErrInvalidRequest, g.mode)
	}
	var err error
	switch {
	case req.ClientSecret != "":
		g.secret = req.ClientSecret
	case req.Grant.ClientKey != "":
		g.keyPEM, g.keyAlg = req.Grant.ClientKey, req.Grant.ClientKeyAlg
	case t.settings.ClientSecretFile != "":
		g.secret, err = ReadSecretFile(t.settings.ClientSecretFile)
	case cfg.ClientSecretRef != "":
		g.secret, err = storedSecret(ctx, st, cfg.ClientSecretRef)
	case cfg.ClientKey != "":
		g.keyAlg = cfg.ClientKeyAlg
		if _, ok := config.SecretRef(cfg.ClientKey); ok {
			g.keyPEM, err = storedSecret(ctx, st, cfg.ClientKey)
		} else {
			g.keyPEM, err = ReadSecretFile(cfg.ClientKey)
		}
	case prev != nil && prev.ClientSecret != "" && prev.ClientID == g.clientID:
		if prev.ClientAuthMethod == oauth.AuthPrivateKeyJWT {
			g.keyPEM, g.keyAlg = prev.ClientSecret, old.ClientKeyAlg
		} else {
			g.secret = prev.ClientSecret
		}
	}
	if err != nil {
		return g, fmt.Errorf("the %s grant's client credentials: %w", g.mode, err)
	}
	switch g.mode {
	case api.GrantClientCredentials:
		if g.secret == "" && g.keyPEM == "" {
			return g, fmt.Errorf("%w: the client_credentials grant needs a client secret or key (--client-secret-file or --client-key-file; client_secret_file, client_secret or client_key in the config)", ErrInvalidRequest)
		}
	case api.GrantJWTBearer:
		switch {
		case req.Grant.AssertionFile != "":
			g.assertionFile = req.Grant.AssertionFile
		case cfg.WorkloadTokenFile != "" || cfg.WorkloadTokenEnv != "":
			g.assertionFile, g.assertionEnv = cfg.WorkloadTokenFile, cfg.WorkloadTokenEnv
		default:
			g.assertionFile, g.assertionEnv = old.AssertionFile, old.AssertionEnv
		}
		if g.assertionFile == "" && g.assertionEnv == "" {
			return g, fmt.Errorf("%w: the jwt_bearer grant needs the workload's token (--assertion-file, or workload_token_file / workload_token_env in the config)", ErrInvalidRequest)
		}
	case api.GrantEnterprise:
		g.idp = cmp.Or(req.Grant.IdP, cfg.IdP, old.IdP)
		if g.idp == "" {
			return g, fmt.Errorf("%w: the enterprise grant needs an identity provider (--idp NAME, or idp in the config, naming an [idps.NAME] table)", ErrInvalidRequest)
		}
	}
	return g, nil
}

// isOfflineAccess: a grant without a person asks for no refresh token
// (offline_access), which an authorization server may refuse to such a
// grant (Ory Hydra does).
func isOfflineAccess(scope string) bool { return scope == "offline_access" }

// record writes g into rec: the grant to run again, and the client
// credential kept with the session in the store (the secret, or the
// private_key_jwt key in the client_secret item).
func (g grantSpec) record(rec *store.SessionRecord, c *oauth.Client) {
	rec.Grant = store.Grant{Mode: g.mode, AssertionFile: g.assertionFile, AssertionEnv: g.assertionEnv, IdP: g.idp}
	if c.Key != nil {
		rec.ClientSecret, rec.Grant.ClientKeyAlg = g.keyPEM, c.Key.Alg
	}
}

// storedSecret reads a "secret:NAME" reference from st.
func storedSecret(ctx context.Context, st store.Store, ref string) (string, error) {
	name, _ := config.SecretRef(ref)
	v, err := store.LoadSecret(ctx, st, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("no stored secret %s (store it with `mcpkey secret set %s`)", name, name)
		}
		return "", storeErr(err)
	}
	defer clear(v)
	return strings.TrimRight(string(v), "\r\n"), nil
}

// grantClient is the client a grant authenticates as at as: a
// private_key_jwt client with a key, else client_secret_basic (or
// client_secret_post when the server takes only that) with a secret, else
// a public client sending its id.
func (g grantSpec) grantClient(as *oauth.AuthServer, method string) (*oauth.Client, error) {
	c := &oauth.Client{Issuer: as.Issuer, ClientID: g.clientID, Source: oauth.SourcePreregistered, TokenEndpointAuthMethod: "none"}
	switch {
	case g.keyPEM != "":
		k, err := oauth.ParseClientKey([]byte(g.keyPEM), g.keyAlg)
		if err != nil {
			return nil, err
		}
		c.Key, c.TokenEndpointAuthMethod = k, oauth.AuthPrivateKeyJWT
	case g.secret != "":
		c.ClientSecret = g.secret
		c.TokenEndpointAuthMethod = "client_secret_basic"
		m := as.TokenEndpointAuthMethodsSupported
		if method == "client_secret_post" || method == "" && len(m) > 0 && !slices.Contains(m, "client_secret_basic") && slices.Contains(m, "client_secret_post") {
			c.TokenEndpointAuthMethod = "client_secret_post"
		}
	}
	return c, nil
}

// runGrant runs g at as for resource: the whole grant, from the workload
// token's file or the IdP's exchange to the access token. method is the
// client authentication the session used before ("" at login); hc is t's
// HTTP client, audience the audience parameter ("" for none), idps where
// the enterprise grant's sign-in is.
func (g grantSpec) run(ctx context.Context, hc *http.Client, idps *idpSignIns, t target, as *oauth.AuthServer, resource string, scopes []string, audience, method string) (*oauth.Client, *oauth.TokenSet, error) {
	c, err := g.grantClient(as, method)
	if err != nil {
		return nil, nil, err
	}
	aud := oauth.WithAudience(audience)
	switch g.mode {
	case api.GrantClientCredentials:
		ts, err := oauth.ClientCredentials(ctx, hc, as, c, resource, scopes, aud)
		return c, ts, err
	case api.GrantJWTBearer:
		assertion, err := readAssertion(g.assertionFile, g.assertionEnv, "workload token")
		if err != nil {
			return c, nil, err
		}
		defer wipe.String(assertion)
		ts, err := oauth.JWTBearer(ctx, hc, as, c, assertion, resource, scopes, aud)
		return c, ts, err
	case api.GrantEnterprise:
		jag, err := idps.assertion(ctx, hc, t, g.idp, as.Issuer, resource, scopes, g.person)
		if err != nil {
			return c, nil, err
		}
		defer wipe.String(jag)
		ts, err := oauth.JWTBearer(ctx, hc, as, c, jag, resource, scopes, aud)
		return c, ts, err
	}
	return c, nil, fmt.Errorf("unknown grant %q", g.mode)
}

// maxAssertion caps a workload token or ID token read from a file.
const maxAssertion = 64 << 10

// readAssertion reads a token handed to mcpkey from outside: a file, read
// anew each time (a Kubernetes projected token is rotated in place), or an
// environment variable of the agent. The token is never logged or quoted.
func readAssertion(file, env, what string) (string, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("read the %s: %w", what, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxAssertion+1))
		defer clear(b)
		switch {
		case err != nil:
			return "", fmt.Errorf("read the %s: %w", what, err)
		case len(b) > maxAssertion:
			return "", fmt.Errorf("the %s file %s is larger than %d bytes: not a token", what, file, maxAssertion)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("the %s file %s is empty", what, file)
		}
		return s, nil
	}
	s := strings.TrimSpace(os.Getenv(env))
	if s == "" {
		return "", fmt.Errorf("the %s variable %s is not set in the agent's environment", what, env)
	}
	return s, nil
}

// regrant renews a session that has no refresh token by running its grant
// again, and applies the outcome as a refresh would.
func (rf *refresher) regrant(ctx context.Context, s *session, r store.SessionRecord) error {
	t, err := rf.names.resolve(r.Server)
	if err != nil {
		t = target{url: r.Server}
	}
	g, err := grantFor(ctx, rf.store, t, LoginRequest{}, &r)
	if err != nil {
		return rf.failed(s, r, fmt.Errorf("renew %s: %w", r.Server, err), false)
	}
	as := &oauth.AuthServer{Issuer: r.Issuer, TokenEndpoint: r.TokenEndpoint, RevocationEndpoint: r.RevocationEndpoint}
	client, ts, err := g.run(ctx, rf.http.client(t), rf.idps, t, as, r.Resource, r.Scopes, rf.names.audience(t, as.Issuer, r.Resource), r.ClientAuthMethod)
	if err != nil {
		// A grant the server refused (an OAuth error: invalid_grant,
		// invalid_client, invalid_scope …) or an IdP sign-in that only a
		// person can renew is not tried again on its own (the extension
		// asks clients not to retry or switch grants): the session needs a
		// login, or for a configured grant the next token request after
		// grantRetryAfter. Anything else (network, 5xx, a token file being
		// rotated) is retried with backoff while the token lasts.
		var te *oauth.TokenError
		refused := errors.As(err, &te) && te.Code != "" && !oauth.IsTransient(err) || errors.Is(err, errSignInNeeded)
		return rf.failed(s, r, fmt.Errorf("renew %s: %w", r.Server, err), !refused)
	}
	next := r
	g.record(&next, client)
	return rf.renewed(ctx, s, r, next, client, ts)
}

// autoGrant starts the session of a configured server whose grant needs no
// person (client credentials, workload identity, enterprise with an ID
// token supplied) on its first token request, as one login every caller
// joins. It reports whether it ran.
//
// A grant that failed is not run again for the same server within
// grantRetryAfter: a caller polling token.get must not turn a refused
// grant into a request per call (the extension asks clients not to retry
// a refused JWT bearer grant); it gets the same error meanwhile. A config
// change or `mcpkey login` tries at once.
func (a *Agent) autoGrant(ctx context.Context, t target, key sessionKey) (bool, error) {
	if t.settings.Grant == "" {
		return false, nil
	}
	if err := a.grantFails.recent(key, t.settings, a.now()); err != nil {
		return true, err
	}
	_, err := a.login(ctx, t, key, LoginRequest{Server: t.url, Account: key.account, Grant: api.GrantLogin{Unattended: true}}, nil)
	if err != nil && ctx.Err() == nil {
		a.grantFails.record(key, t.settings, a.now(), err)
	}
	return true, err
}

// grantRetryAfter is how long a failed automatic grant is not run again.
const grantRetryAfter = 30 * time.Second

// grantFailures remembers the last failed automatic grant per session.
type grantFailures struct {
	mu sync.Mutex
	m  map[sessionKey]grantFailure
}

// grantFailure is one failed grant and the config it ran with: a changed
// grant config is tried at once.
type grantFailure struct {
	at       time.Time
	settings config.GrantSettings
	err      error
}

func (g *grantFailures) recent(key sessionKey, ss ServerSettings, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.m[key]
	if !ok || f.settings != ss.GrantSettings || now.Sub(f.at) >= grantRetryAfter {
		return nil
	}
	return f.err
}

func (g *grantFailures) record(key sessionKey, ss ServerSettings, now time.Time, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil || len(g.m) >= maxResolved {
		g.m = make(map[sessionKey]grantFailure)
	}
	g.m[key] = grantFailure{at: now, settings: ss.GrantSettings, err: err}
}

// loginNeeded reports whether s's grant is known dead.
func (s *session) loginNeeded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.needsLogin
}
