package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/internal/wipe"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// The user's sign-in at a company identity provider ([idps.NAME]), which
// enterprise-managed authorization exchanges for identity assertions. It
// is an OpenID Connect authorization-code login with PKCE through the
// browser, as a server's login, done once per IdP: the ID token and the
// refresh token are kept in the store (item idp/NAME), the ID token
// renewed with the refresh token when it nears expiry, and the browser
// opened again only when that fails and a person is there (a login, not a
// background renewal).
//
// Library: golang.org/x/oauth2 runs the flow (AuthCodeURL with S256, the
// exchange and the refresh); package oauth's Flow is for MCP servers (it
// requires a resource indicator, which an OpenID sign-in has none of). The
// ID token is not verified here: mcpkey relies on none of its claims but
// exp (when to renew) and nonce (that it answers this sign-in); the IdP
// that issued it verifies it when it is exchanged.

// errSignInNeeded: the IdP sign-in is gone and nobody is there to redo it.
var errSignInNeeded = errors.New("sign in again with `mcpkey login` for this server")

// idpRenewBefore is how long before its exp an ID token is renewed.
const idpRenewBefore = time.Minute

// grantPerson is the person behind a login: the browser may open for them.
type grantPerson struct {
	req  LoginRequest
	step func(string)
}

// idpSession is the stored sign-in at one IdP.
type idpSession struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func idpKey(name string) string { return "idp/" + name }

// idpSignIns is the room of the user's sign-ins at identity providers: it
// reads and renews the kept sign-ins, runs a new one through the browser,
// and exchanges them for identity assertions.
type idpSignIns struct {
	store    store.Store
	log      *slog.Logger
	settings func() *Settings                            // the settings in force ([idps.NAME])
	openURL  func(ctx context.Context, url string) error // Config.OpenURL
	flows    *callbacks                                  // where a pasted redirect URL finds a sign-in
}

// assertion exchanges the user's sign-in at the identity provider name for
// an identity assertion (ID-JAG) for the authorization server audience and
// the MCP server resource, over hc (t's client).
func (i *idpSignIns) assertion(ctx context.Context, hc *http.Client, t target, name, audience, resource string, scopes []string, person *grantPerson) (string, error) {
	p, ok := i.settings().IdPs[name]
	if !ok {
		return "", fmt.Errorf("%w: no identity provider %q in the config ([idps.%s])", ErrInvalidRequest, name, name)
	}
	idp, err := oauth.DiscoverIdP(ctx, hc, p.Issuer, oauth.DiscoverOptions{AllowPrivateNetwork: t.settings.AllowPrivateNetwork, Logger: i.log})
	if err != nil {
		return "", err
	}
	cfg, err := i.config(ctx, p, idp)
	if err != nil {
		return "", err
	}
	defer wipe.String(cfg.ClientSecret)
	idToken, err := i.idToken(ctx, hc, p, idp, cfg, person)
	if err != nil {
		return "", err
	}
	c := &oauth.Client{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: cfg.ClientSecret}
	return oauth.ExchangeIDJAG(ctx, hc, idp.TokenEndpoint, c, idToken, audience, resource, scopes)
}

// idToken returns a current ID token of the user's sign-in at p.
func (i *idpSignIns) idToken(ctx context.Context, hc *http.Client, p config.IdPSettings, idp *oauth.AuthServer, cfg *oauth2.Config, person *grantPerson) (string, error) {
	if p.IDTokenFile != "" || p.IDTokenEnv != "" {
		return readAssertion(p.IDTokenFile, p.IDTokenEnv, "identity provider ID token")
	}
	var sess idpSession
	if b, err := i.store.Get(ctx, idpKey(p.Name)); err == nil {
		err = json.Unmarshal(b, &sess)
		clear(b)
		if err != nil || sess.Issuer != p.Issuer || sess.ClientID != p.ClientID {
			sess = idpSession{} // unreadable, or of another IdP or client: sign in again
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", storeErr(err)
	}
	if exp, ok := oauth.JWTExpiry(sess.IDToken); ok && time.Now().Add(idpRenewBefore).Before(exp) {
		return sess.IDToken, nil
	}
	var why string
	if sess.RefreshToken != "" {
		tok, err := cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: sess.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
		if id, _ := tokenExtra(tok, "id_token"); err == nil && id != "" {
			sess.IDToken = id
			if tok.RefreshToken != "" {
				sess.RefreshToken = tok.RefreshToken
			}
			return sess.IDToken, i.put(ctx, p.Name, sess)
		}
		why = "renewing the sign-in failed"
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				why += " (" + (&oauth.TokenError{Code: re.ErrorCode}).Error() + ")"
			}
		} else {
			why += " (the answer had no ID token)"
		}
		i.log.Info("identity provider sign-in could not be renewed", "idp", p.Name, "why", why)
	}
	if person == nil {
		if why == "" {
			why = "no sign-in"
		}
		return "", fmt.Errorf("identity provider %s: %s; %w", p.Name, why, errSignInNeeded)
	}
	return i.signIn(ctx, hc, p, idp, cfg, person)
}

func tokenExtra(tok *oauth2.Token, k string) (string, bool) {
	if tok == nil {
		return "", false
	}
	s, ok := tok.Extra(k).(string)
	return s, ok
}

// config is mcpkey's client at the IdP, for x/oauth2.
func (i *idpSignIns) config(ctx context.Context, p config.IdPSettings, idp *oauth.AuthServer) (*oauth2.Config, error) {
	cfg := &oauth2.Config{
		ClientID: p.ClientID,
		Endpoint: oauth2.Endpoint{AuthURL: idp.AuthorizationEndpoint, TokenURL: idp.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   oauth.UnionScopes([]string{"openid"}, p.Scopes),
	}
	var err error
	switch {
	case p.ClientSecretFile != "":
		cfg.ClientSecret, err = ReadSecretFile(p.ClientSecretFile)
	case p.ClientSecretRef != "":
		cfg.ClientSecret, err = storedSecret(ctx, i.store, p.ClientSecretRef)
	}
	if err != nil {
		return nil, fmt.Errorf("identity provider %s: client secret: %w", p.Name, err)
	}
	if cfg.ClientSecret != "" {
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	return cfg, nil
}

// signIn signs the user in at the IdP through the browser and stores
// the sign-in.
func (i *idpSignIns) signIn(ctx context.Context, hc *http.Client, p config.IdPSettings, idp *oauth.AuthServer, cfg *oauth2.Config, person *grantPerson) (string, error) {
	if idp.AuthorizationEndpoint == "" {
		return "", fmt.Errorf("identity provider %s has no authorization endpoint to sign in at", p.Name)
	}
	cb, err := oauth.ListenCallback(ctx, 0, "/callback")
	if err != nil {
		return "", fmt.Errorf("loopback callback listener: %w", err)
	}
	defer cb.Close()
	c := *cfg
	c.RedirectURL = cb.RedirectURI()
	state, nonce := randomString(), randomString()
	verifier := oauth2.GenerateVerifier()
	authURL := c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	defer i.flows.add(state, cb)() // a pasted redirect URL (--no-browser) finds it
	if person.req.NoBrowser {
		person.step("sign in to the identity provider " + p.Name + ": open " + authURL + " in a browser on any machine, then paste the address the browser ends on (it starts with " + cb.RedirectURI() + ")")
	} else {
		person.step("signing in to the identity provider " + p.Name + " (" + p.Issuer + "): opening your browser")
		launch, err := cb.Launch(authURL)
		if err == nil {
			err = i.openURL(browser.WithEnv(ctx, person.req.Env), launch)
		}
		if err != nil {
			person.step("could not open a browser (" + err.Error() + "); open this URL yourself: " + authURL)
		}
	}
	person.step("waiting for you to finish signing in at " + p.Issuer + " (Ctrl-C cancels)")
	code, err := cb.Wait(ctx, func(q url.Values) (string, error) {
		return oauth.ValidateAuthResponse(q, state, p.Issuer, idp.IssParameterSupported)
	})
	if err != nil {
		return "", fmt.Errorf("identity provider %s: %w", p.Name, err)
	}
	tok, err := c.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			te := &oauth.TokenError{Code: re.ErrorCode}
			if re.Response != nil {
				te.Status = re.Response.StatusCode
			}
			err = te // RetrieveError's own text may quote the whole answer
		}
		return "", fmt.Errorf("identity provider %s: exchange the code: %w", p.Name, err)
	}
	idToken, _ := tokenExtra(tok, "id_token")
	if idToken == "" {
		return "", fmt.Errorf("identity provider %s answered without an ID token (is it an OpenID provider, and openid allowed for client %s?)", p.Name, p.ClientID)
	}
	if subtle.ConstantTimeCompare([]byte(oauth.JWTClaim(idToken, "nonce")), []byte(nonce)) != 1 {
		return "", fmt.Errorf("identity provider %s: the ID token does not answer this sign-in (nonce)", p.Name)
	}
	sess := idpSession{Issuer: p.Issuer, ClientID: p.ClientID, IDToken: idToken, RefreshToken: tok.RefreshToken}
	if err := i.put(ctx, p.Name, sess); err != nil {
		return "", err
	}
	person.step("signed in to the identity provider " + p.Name)
	i.log.Info("identity provider sign-in", "idp", p.Name, "issuer", p.Issuer, "refresh", sess.RefreshToken != "")
	return idToken, nil
}

func (i *idpSignIns) put(ctx context.Context, name string, s idpSession) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	defer clear(b)
	if err := i.store.Put(ctx, idpKey(name), b); err != nil {
		return fmt.Errorf("save the identity provider sign-in: %w", storeErr(err))
	}
	return nil
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forget deletes the kept sign-in at the identity provider name.
func (i *idpSignIns) forget(ctx context.Context, name string) error {
	if err := i.store.Delete(ctx, idpKey(name)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("forget the sign-in at the identity provider %s: %w", name, storeErr(err))
	}
	i.log.Info("identity provider sign-in forgotten", "idp", name)
	return nil
}
