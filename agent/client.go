package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// registrations is the agent's room for the client registrations stored
// per issuer, as sessions use them: which client a session's tokens were
// issued to, and forgetting one the server refused.
type registrations struct {
	st  store.Store
	log *slog.Logger
	bg  context.Context // the agent's: cancelled by Close
}

// stored returns the registration stored for issuer (store.ErrNotFound
// when there is none).
func (g *registrations) stored(ctx context.Context, issuer string) (*oauth.Client, error) {
	c, err := store.LoadClient(ctx, g.st, issuer)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, storeErr(err)
	}
	return &c, nil
}

// errClientGone: the client a session was issued to can no longer be found
// (a record written before sessions recorded their client, whose
// registration has since been replaced or forgotten). Only a login helps.
var errClientGone = errors.New("the client registration this session was issued to is no longer stored; log in again")

// forSession returns the client r's tokens were issued to: refresh and
// revocation must use exactly that one, not whatever registration is stored
// for the issuer now (a pre-registered client has none there; a newer
// dynamic registration is another client, and the server answers
// invalid_grant). Records written before the client was recorded fall back
// to the issuer's stored registration, then to the configured client id,
// when the client id matches.
//
// A registration stored for the issuer under the very client id the session
// recorded is used as stored: an RFC 7592 update may have given that client
// a new secret.
func (g *registrations) forSession(ctx context.Context, t target, r store.SessionRecord) (*oauth.Client, error) {
	if r.ClientSource == oauth.SourcePreregistered && r.ClientID != "" {
		return recordedClient(r), nil
	}
	c, err := g.stored(ctx, r.Issuer)
	if r.ClientSource != "" && r.ClientID != "" && (err != nil || c.ClientID != r.ClientID) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			g.log.Warn("could not read the stored client registration; using the session's", "issuer", r.Issuer, "err", err)
		}
		return recordedClient(r), nil
	}
	switch {
	case err == nil && (r.ClientID == "" || c.ClientID == r.ClientID):
		return c, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err // the keyring is in trouble: nothing is known to be gone
	}
	if id := t.settings.ClientID; id != "" && id == r.ClientID {
		c := &oauth.Client{Issuer: r.Issuer, ClientID: id, TokenEndpointAuthMethod: "none", Source: oauth.SourcePreregistered}
		if f := t.settings.ClientSecretFile; f != "" {
			if c.ClientSecret, err = ReadSecretFile(f); err != nil {
				return nil, err
			}
			c.TokenEndpointAuthMethod = "client_secret_basic"
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w (client id %s)", errClientGone, r.ClientID)
}

// recordedClient is the client r recorded.
func recordedClient(r store.SessionRecord) *oauth.Client {
	c := &oauth.Client{
		Issuer: r.Issuer, ClientID: r.ClientID, ClientSecret: r.ClientSecret,
		TokenEndpointAuthMethod: r.ClientAuthMethod, Source: r.ClientSource,
	}
	if r.ClientAuthMethod == oauth.AuthPrivateKeyJWT {
		// The session keeps its private_key_jwt key where a secret would be
		// (grants.go); a key that no longer parses authenticates nothing.
		c.ClientSecret = ""
		c.Key, _ = oauth.ParseClientKey([]byte(r.ClientSecret), r.Grant.ClientKeyAlg)
	}
	return c
}

// recordClient stores in r the client its tokens were issued to.
func recordClient(r *store.SessionRecord, c *oauth.Client) {
	r.ClientID, r.ClientSource = c.ClientID, c.Source
	r.ClientAuthMethod, r.ClientSecret = c.TokenEndpointAuthMethod, c.ClientSecret
	if r.ClientSource == "" {
		r.ClientSource = oauth.SourceDCR
	}
}

// forgetRejected drops the issuer's stored registration when it is
// the client the authorization server just refused (invalid_client), so
// that the next login registers again instead of offering it once more. It
// returns a note for the user.
func (g *registrations) forgetRejected(r store.SessionRecord) string {
	if r.ClientSource == oauth.SourcePreregistered {
		return "check the pre-registered client id and secret (--client-id, --client-secret-file, or client_id in the config)"
	}
	ctx, cancel := context.WithTimeout(g.bg, refreshTimeout)
	defer cancel()
	forgot, err := g.forget(ctx, r.Issuer, r.ClientID)
	switch {
	case err != nil:
		g.log.Warn("could not drop a client registration the server refused", "issuer", r.Issuer, "err", err)
		return ""
	case forgot:
		return "its registration was dropped and the next login registers again"
	}
	return ""
}

// forget deletes the registration stored for issuer; with clientID
// set, only when it is that client. It reports whether one was deleted.
func (g *registrations) forget(ctx context.Context, issuer, clientID string) (bool, error) {
	c, err := g.stored(ctx, issuer)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil && !errors.Is(err, store.ErrCorrupt) {
		return false, err
	}
	if err == nil && clientID != "" && c.ClientID != clientID {
		return false, nil
	}
	if err := store.DeleteClient(ctx, g.st, issuer); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, storeErr(err)
	}
	g.log.Info("client registration forgotten", "issuer", issuer)
	return true, nil
}
