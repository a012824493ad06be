package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
)

// SchemaVersion is the version of the stored layout this package reads and
// writes, kept in the item "schema". It changes only with the layout, not
// with the app version, so a later mcpkey can migrate items in place.
const SchemaVersion = 1

const schemaKey = "schema"

// EnsureSchema checks the stored schema version, writing it when absent.
// It fails when the store was written by a newer layout, and returns an
// ErrCorrupt error when the item cannot be read as a version.
func EnsureSchema(ctx context.Context, s Store) error {
	v, err := s.Get(ctx, schemaKey)
	if errors.Is(err, ErrNotFound) {
		return s.Put(ctx, schemaKey, []byte(strconv.Itoa(SchemaVersion)))
	}
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil || n < 1 {
		return corrupt(schemaKey, "not a schema version number")
	}
	if n > SchemaVersion {
		return fmt.Errorf("stored schema version %d is newer than this mcpkey supports (%d)", n, SchemaVersion)
	}
	// n < SchemaVersion: migrations go here when there is a version 2.
	return nil
}

// corrupt builds an ErrCorrupt error naming key (never its content).
func corrupt(key, why string) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, key, why)
}

// decodeJSON unmarshals an item, reporting errors without quoting content
// (json's syntax errors quote the offending character).
func decodeJSON(key string, data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return corrupt(key, fmt.Sprintf("invalid json at byte %d", syn.Offset))
	case errors.As(err, &typ):
		return corrupt(key, fmt.Sprintf("json field %q has the wrong type", typ.Field))
	}
	return corrupt(key, "invalid json")
}

// SessionID is the short stable identifier of the session for (server,
// account): 16 hex digits of SHA-256(server + "\n" + account).
func SessionID(server, account string) string {
	sum := sha256.Sum256([]byte(server + "\n" + account))
	return hex.EncodeToString(sum[:8])
}

func sessionKey(id, item string) string { return "session/" + id + "/" + item }

// SessionRecord is one session as stored: the non-secret metadata (item
// session/<id>/meta) plus the access token (session/<id>/access) and the
// refresh token (session/<id>/refresh, absent when RefreshToken is "").
// Printing it with fmt or slog redacts the tokens.
//
// The client the tokens were issued to is recorded with them (ClientID,
// ClientSource, ClientAuthMethod, ClientSecret in session/<id>/client_secret
// when there is one): a refresh or revocation must use exactly that client,
// whatever registration is stored for the issuer later. Records written
// before ClientSource existed have it "".
type SessionRecord struct {
	Server   string // MCP server (resource) URL
	Account  string // account label ("" for the default account)
	Issuer   string // authorization server issuer
	ClientID string
	// ClientSource is the client's oauth.Client.Source ("preregistered",
	// "cimd", "dcr"); "" in records written before it was recorded.
	ClientSource     string
	ClientAuthMethod string // token_endpoint_auth_method
	ClientSecret     string // secret; "" for a public client
	// Resource is the RFC 8707 resource (the PRM "resource", verbatim),
	// sent on every refresh; TokenEndpoint and RevocationEndpoint are the
	// issuer's, recorded at login so a refresh needs no discovery.
	Resource           string
	TokenEndpoint      string
	RevocationEndpoint string
	TokenType          string
	AccessToken        string
	RefreshToken       string
	ExpiresAt          time.Time // absolute; zero when unknown
	ObtainedAt         time.Time
	Scopes             []string
	// DPoPKey is the session's DPoP proof key (PKCS #8 DER, a secret, item
	// session/<id>/dpop_key) when its tokens are key-bound (RFC 9449); ""
	// for bearer sessions. It never leaves the agent.
	DPoPKey string
	// DPoPRefused: the server refused a key-bound token, so this session
	// holds bearer tokens and later logins ask for bearer tokens too.
	DPoPRefused bool
	// Grant is how a session without a browser sign-in gets its next
	// token (zero: authorization code, renewed with RefreshToken).
	Grant Grant
}

// Grant is the non-secret part of a grant the agent runs again when a
// session's token nears expiry (api.GrantClientCredentials …). Secrets stay
// where they are: a client secret or private_key_jwt key in the session's
// client_secret item, a workload token in its file.
type Grant struct {
	Mode          string `json:"mode"`
	ClientKeyAlg  string `json:"client_key_alg,omitempty"`
	AssertionFile string `json:"assertion_file,omitempty"`
	AssertionEnv  string `json:"assertion_env,omitempty"`
	IdP           string `json:"idp,omitempty"`
}

// SessionMeta is a session's non-secret part, readable without touching
// the token items.
type SessionMeta struct {
	ID                 string
	Server             string
	Account            string
	Issuer             string
	ClientID           string
	ClientSource       string
	ClientAuthMethod   string
	Resource           string
	TokenEndpoint      string
	RevocationEndpoint string
	TokenType          string
	ExpiresAt          time.Time
	ObtainedAt         time.Time
	Scopes             []string
	HasRefresh         bool // a refresh token was stored with the session
	HasClientSecret    bool // a client secret was stored with the session
	HasDPoPKey         bool // the session's tokens are bound to a stored DPoP key
	DPoPRefused        bool // the server refused key-bound tokens
	Grant              Grant
}

// Meta returns r's non-secret part.
func (r SessionRecord) Meta() SessionMeta {
	return SessionMeta{
		ID:                 SessionID(r.Server, r.Account),
		Server:             r.Server,
		Account:            r.Account,
		Issuer:             r.Issuer,
		ClientID:           r.ClientID,
		ClientSource:       r.ClientSource,
		ClientAuthMethod:   r.ClientAuthMethod,
		Resource:           r.Resource,
		TokenEndpoint:      r.TokenEndpoint,
		RevocationEndpoint: r.RevocationEndpoint,
		TokenType:          r.TokenType,
		ExpiresAt:          r.ExpiresAt,
		ObtainedAt:         r.ObtainedAt,
		Scopes:             slices.Clone(r.Scopes),
		HasRefresh:         r.RefreshToken != "",
		HasDPoPKey:         r.DPoPKey != "",
		DPoPRefused:        r.DPoPRefused,
		HasClientSecret:    r.ClientSecret != "",
		Grant:              r.Grant,
	}
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue implements slog.LogValuer with the tokens redacted.
func (r SessionRecord) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("server", r.Server),
		slog.String("account", r.Account),
		slog.String("issuer", r.Issuer),
		slog.String("client_id", r.ClientID),
		slog.String("token_type", r.TokenType),
		slog.String("access_token", redacted(r.AccessToken)),
		slog.String("refresh_token", redacted(r.RefreshToken)),
		slog.String("client_secret", redacted(r.ClientSecret)),
		slog.String("dpop_key", redacted(r.DPoPKey)),
		slog.Time("expires_at", r.ExpiresAt),
		slog.Time("obtained_at", r.ObtainedAt),
		slog.Any("scopes", r.Scopes),
	)
}

// String prints r with the tokens redacted (for %v and %+v).
func (r SessionRecord) String() string {
	return fmt.Sprintf("{server=%s account=%s issuer=%s client_id=%s client_secret=%s token_type=%s access_token=%s refresh_token=%s expires_at=%s obtained_at=%s scopes=%v}",
		r.Server, r.Account, r.Issuer, r.ClientID, redacted(r.ClientSecret), r.TokenType, redacted(r.AccessToken), redacted(r.RefreshToken),
		r.ExpiresAt.Format(time.RFC3339), r.ObtainedAt.Format(time.RFC3339), r.Scopes)
}

// GoString prints r with the tokens redacted (for %#v).
func (r SessionRecord) GoString() string { return "store.SessionRecord" + r.String() }

// sessionMetaJSON is the stored form of session/<id>/meta.
type sessionMetaJSON struct {
	V                  int       `json:"v"`
	Server             string    `json:"server"`
	Account            string    `json:"account"`
	Issuer             string    `json:"issuer,omitempty"`
	ClientID           string    `json:"client_id,omitempty"`
	ClientSource       string    `json:"client_source,omitempty"`
	ClientAuthMethod   string    `json:"client_auth_method,omitempty"`
	Resource           string    `json:"resource,omitempty"`
	TokenEndpoint      string    `json:"token_endpoint,omitempty"`
	RevocationEndpoint string    `json:"revocation_endpoint,omitempty"`
	TokenType          string    `json:"token_type,omitempty"`
	ExpiresAt          time.Time `json:"expires_at,omitzero"`
	ObtainedAt         time.Time `json:"obtained_at,omitzero"`
	Scopes             []string  `json:"scopes,omitempty"`
	HasRefresh         bool      `json:"has_refresh,omitempty"`
	HasClientSecret    bool      `json:"has_client_secret,omitempty"`
	HasDPoPKey         bool      `json:"has_dpop_key,omitempty"`
	DPoPRefused        bool      `json:"dpop_refused,omitempty"`
	Grant              *Grant    `json:"grant,omitempty"`
}

// PutSession stores r: the refresh token first (or deletes a stored one
// when r has none), then the access token, then the metadata, so a session
// is listed only once its tokens are in place.
func PutSession(ctx context.Context, s Store, r SessionRecord) error {
	if r.Server == "" {
		return errors.New("put session: empty server")
	}
	if r.AccessToken == "" {
		return fmt.Errorf("put session %s: empty access token", r.Server)
	}
	id := SessionID(r.Server, r.Account)
	if r.RefreshToken != "" {
		if err := putWiped(ctx, s, sessionKey(id, "refresh"), r.RefreshToken); err != nil {
			return fmt.Errorf("put session %s: %w", r.Server, err)
		}
	} else if err := s.Delete(ctx, sessionKey(id, "refresh")); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	if r.ClientSecret != "" {
		if err := putWiped(ctx, s, sessionKey(id, "client_secret"), r.ClientSecret); err != nil {
			return fmt.Errorf("put session %s: %w", r.Server, err)
		}
	} else if err := s.Delete(ctx, sessionKey(id, "client_secret")); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	if r.DPoPKey != "" {
		if err := putWiped(ctx, s, sessionKey(id, "dpop_key"), r.DPoPKey); err != nil {
			return fmt.Errorf("put session %s: %w", r.Server, err)
		}
	} else if err := s.Delete(ctx, sessionKey(id, "dpop_key")); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	if err := putWiped(ctx, s, sessionKey(id, "access"), r.AccessToken); err != nil {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	m := r.Meta()
	meta, err := json.Marshal(sessionMetaJSON{
		V: SchemaVersion, Server: m.Server, Account: m.Account, Issuer: m.Issuer,
		ClientID: m.ClientID, ClientSource: m.ClientSource, ClientAuthMethod: m.ClientAuthMethod,
		Resource: m.Resource, TokenEndpoint: m.TokenEndpoint,
		RevocationEndpoint: m.RevocationEndpoint, TokenType: m.TokenType, ExpiresAt: m.ExpiresAt.UTC(),
		ObtainedAt: m.ObtainedAt.UTC(), Scopes: m.Scopes, HasRefresh: m.HasRefresh, HasClientSecret: m.HasClientSecret,
		HasDPoPKey: m.HasDPoPKey, DPoPRefused: m.DPoPRefused,
		Grant: grantJSON(m.Grant),
	})
	if err != nil {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	if err := s.Put(ctx, sessionKey(id, "meta"), meta); err != nil {
		return fmt.Errorf("put session %s: %w", r.Server, err)
	}
	return nil
}

// loadMeta reads and checks session/<id>/meta.
func loadMeta(ctx context.Context, s Store, id string) (SessionMeta, error) {
	key := sessionKey(id, "meta")
	data, err := s.Get(ctx, key)
	if err != nil {
		return SessionMeta{}, err
	}
	var j sessionMetaJSON
	if err := decodeJSON(key, data, &j); err != nil {
		return SessionMeta{}, err
	}
	if j.V < 1 || j.V > SchemaVersion {
		return SessionMeta{}, corrupt(key, fmt.Sprintf("unsupported version %d", j.V))
	}
	if j.Server == "" {
		return SessionMeta{}, corrupt(key, "no server")
	}
	if SessionID(j.Server, j.Account) != id {
		return SessionMeta{}, corrupt(key, "server and account do not match the item's id")
	}
	return SessionMeta{
		ID: id, Server: j.Server, Account: j.Account, Issuer: j.Issuer, ClientID: j.ClientID,
		ClientSource: j.ClientSource, ClientAuthMethod: j.ClientAuthMethod, HasClientSecret: j.HasClientSecret,
		Resource: j.Resource, TokenEndpoint: j.TokenEndpoint, RevocationEndpoint: j.RevocationEndpoint,
		TokenType: j.TokenType, ExpiresAt: j.ExpiresAt, ObtainedAt: j.ObtainedAt,
		Scopes: j.Scopes, HasRefresh: j.HasRefresh, HasDPoPKey: j.HasDPoPKey, DPoPRefused: j.DPoPRefused,
		Grant: deref(j.Grant),
	}, nil
}

// grantJSON is nil for the zero Grant, so records of browser sign-ins keep
// their stored form.
func grantJSON(g Grant) *Grant {
	if g == (Grant{}) {
		return nil
	}
	return &g
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// loadByID reads a whole session. When the meta item loaded but a token
// item did not, the record returned with the error carries the metadata
// (no tokens), so the caller can name the session.
func loadByID(ctx context.Context, s Store, id string) (SessionRecord, error) {
	m, err := loadMeta(ctx, s, id)
	if err != nil {
		return SessionRecord{}, err
	}
	partial := SessionRecord{
		Server: m.Server, Account: m.Account, Issuer: m.Issuer, ClientID: m.ClientID,
		ClientSource: m.ClientSource, ClientAuthMethod: m.ClientAuthMethod,
		Resource: m.Resource, TokenEndpoint: m.TokenEndpoint, RevocationEndpoint: m.RevocationEndpoint,
		TokenType: m.TokenType, ExpiresAt: m.ExpiresAt, ObtainedAt: m.ObtainedAt, Scopes: m.Scopes,
		DPoPRefused: m.DPoPRefused,
		Grant:       m.Grant,
	}
	access, err := getToken(ctx, s, id, "access")
	if err != nil {
		return partial, err
	}
	// Get's buffers are ours: leave only the record's copies behind.
	defer clear(access)
	var refresh, clientSecret []byte
	if m.HasRefresh {
		if refresh, err = getToken(ctx, s, id, "refresh"); err != nil {
			return partial, err
		}
		defer clear(refresh)
	}
	if m.HasClientSecret {
		if clientSecret, err = getToken(ctx, s, id, "client_secret"); err != nil {
			return partial, err
		}
		defer clear(clientSecret)
	}
	var dpopKey []byte
	if m.HasDPoPKey {
		if dpopKey, err = getToken(ctx, s, id, "dpop_key"); err != nil {
			return partial, err
		}
		defer clear(dpopKey)
	}
	r := partial
	r.AccessToken, r.RefreshToken, r.ClientSecret = string(access), string(refresh), string(clientSecret)
	r.DPoPKey = string(dpopKey)
	return r, nil
}

// getToken reads a secret item (a token, a client secret) its meta item
// says exists: missing or empty is ErrCorrupt.
func getToken(ctx context.Context, s Store, id, item string) ([]byte, error) {
	key := sessionKey(id, item)
	v, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, corrupt(key, "missing while its meta item says it exists")
	case err != nil:
		return nil, err
	case len(v) == 0:
		return nil, corrupt(key, "empty")
	}
	return v, nil
}

// LoadSessionByID reads the session stored under id (see SessionIDs). When
// its meta item loaded but a token item did not, the record returned with
// the error carries the metadata (server, account …) and no tokens.
func LoadSessionByID(ctx context.Context, s Store, id string) (SessionRecord, error) {
	r, err := loadByID(ctx, s, id)
	if err != nil {
		return r, fmt.Errorf("load session %s: %w", id, err)
	}
	return r, nil
}

// putWiped stores a token and overwrites the buffer it handed the store:
// every Store copies what it keeps.
func putWiped(ctx context.Context, s Store, key, token string) error {
	b := []byte(token)
	defer clear(b)
	return s.Put(ctx, key, b)
}

// LoadSession reads the session for (server, account), or returns an error
// wrapping ErrNotFound.
func LoadSession(ctx context.Context, s Store, server, account string) (SessionRecord, error) {
	r, err := loadByID(ctx, s, SessionID(server, account))
	if err != nil {
		return SessionRecord{}, fmt.Errorf("load session %s: %w", server, err)
	}
	return r, nil
}

// SessionIDs lists the ids of the stored sessions (those with a meta
// item) without reading any item: one Keys call.
func SessionIDs(ctx context.Context, s Store) ([]string, error) {
	keys, err := s.Keys(ctx, "session/")
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var ids []string
	for _, k := range keys {
		rest := strings.TrimPrefix(k, "session/")
		if id, ok := strings.CutSuffix(rest, "/meta"); ok && id != "" && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// LoadSessions reads every session, tokens included. It returns the
// sessions that loaded, sorted by server then account, and an error
// joining the failures of the others (nil when all loaded).
func LoadSessions(ctx context.Context, s Store) ([]SessionRecord, error) {
	return loadAll(ctx, s, "load", loadByID, func(r SessionRecord) [2]string { return [2]string{r.Server, r.Account} })
}

// ListSessionMeta reads only the sessions' meta items, never a token item.
// Like LoadSessions it returns what loaded, sorted, and the joined failures.
func ListSessionMeta(ctx context.Context, s Store) ([]SessionMeta, error) {
	return loadAll(ctx, s, "list", loadMeta, func(m SessionMeta) [2]string { return [2]string{m.Server, m.Account} })
}

// loadAll loads every stored session with load, sorted by key.
func loadAll[T any](ctx context.Context, s Store, verb string, load func(context.Context, Store, string) (T, error), key func(T) [2]string) ([]T, error) {
	ids, err := SessionIDs(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []T
	var errs []error
	for _, id := range ids {
		v, err := load(ctx, s, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s session %s: %w", verb, id, err))
			continue
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int {
		ka, kb := key(a), key(b)
		return cmp.Or(strings.Compare(ka[0], kb[0]), strings.Compare(ka[1], kb[1]))
	})
	return out, errors.Join(errs...)
}

// DeleteSession removes the session for (server, account): the meta item
// first, so a half-deleted session is no longer listed, then its tokens.
// It returns an error wrapping ErrNotFound when none of its items existed.
func DeleteSession(ctx context.Context, s Store, server, account string) error {
	if err := deleteByID(ctx, s, SessionID(server, account)); err != nil {
		return fmt.Errorf("delete session %s: %w", server, err)
	}
	return nil
}

// DeleteSessionByID is DeleteSession for the session stored under id (one
// whose meta item cannot be read names no server).
func DeleteSessionByID(ctx context.Context, s Store, id string) error {
	if err := deleteByID(ctx, s, id); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return nil
}

func deleteByID(ctx context.Context, s Store, id string) error {
	found := false
	for _, item := range []string{"meta", "access", "refresh", "client_secret", "dpop_key"} {
		err := s.Delete(ctx, sessionKey(id, item))
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// clientKey is client/<16 hex digits of SHA-256(issuer)>.
func clientKey(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return "client/" + hex.EncodeToString(sum[:8])
}

// PutClient stores a client registration under its issuer.
func PutClient(ctx context.Context, s Store, c oauth.Client) error {
	if c.Issuer == "" {
		return errors.New("put client: empty issuer")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put client %s: %w", c.Issuer, err)
	}
	if err := s.Put(ctx, clientKey(c.Issuer), data); err != nil {
		return fmt.Errorf("put client %s: %w", c.Issuer, err)
	}
	return nil
}

// LoadClient reads the registration for issuer, or returns an error
// wrapping ErrNotFound. A stored registration whose issuer differs from
// issuer in any byte is reported as ErrCorrupt, never returned.
func LoadClient(ctx context.Context, s Store, issuer string) (oauth.Client, error) {
	key := clientKey(issuer)
	data, err := s.Get(ctx, key)
	if err != nil {
		return oauth.Client{}, fmt.Errorf("load client %s: %w", issuer, err)
	}
	var c oauth.Client
	if err := decodeJSON(key, data, &c); err != nil {
		return oauth.Client{}, fmt.Errorf("load client %s: %w", issuer, err)
	}
	if c.Issuer != issuer {
		return oauth.Client{}, fmt.Errorf("load client %s: %w", issuer, corrupt(key, "registered for another issuer"))
	}
	return c, nil
}

// DeleteClient removes the registration for issuer (ErrNotFound if none).
func DeleteClient(ctx context.Context, s Store, issuer string) error {
	if err := s.Delete(ctx, clientKey(issuer)); err != nil {
		return fmt.Errorf("delete client %s: %w", issuer, err)
	}
	return nil
}

// validSecretName accepts 1–128 of [A-Za-z0-9._@-], not starting with '.'.
func validSecretName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("%w: secret name %q", ErrInvalidKey, name)
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == '@', c == '-':
		default:
			return fmt.Errorf("%w: secret name %q: only letters, digits and . _ @ -", ErrInvalidKey, name)
		}
	}
	return nil
}

// PutSecret stores a static secret (an API key) under secret/<name>.
func PutSecret(ctx context.Context, s Store, name string, value []byte) error {
	if err := validSecretName(name); err != nil {
		return fmt.Errorf("put secret: %w", err)
	}
	if err := s.Put(ctx, "secret/"+name, value); err != nil {
		return fmt.Errorf("put secret %s: %w", name, err)
	}
	return nil
}

// LoadSecret reads secret/<name>, or returns an error wrapping ErrNotFound.
func LoadSecret(ctx context.Context, s Store, name string) ([]byte, error) {
	if err := validSecretName(name); err != nil {
		return nil, fmt.Errorf("load secret: %w", err)
	}
	v, err := s.Get(ctx, "secret/"+name)
	if err != nil {
		return nil, fmt.Errorf("load secret %s: %w", name, err)
	}
	return v, nil
}

// DeleteSecret removes secret/<name> (ErrNotFound if none).
func DeleteSecret(ctx context.Context, s Store, name string) error {
	if err := validSecretName(name); err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	if err := s.Delete(ctx, "secret/"+name); err != nil {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}

// ListSecrets returns the names of the stored secrets, sorted, without
// reading them.
func ListSecrets(ctx context.Context, s Store) ([]string, error) {
	keys, err := s.Keys(ctx, "secret/")
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if n := strings.TrimPrefix(k, "secret/"); validSecretName(n) == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}
