// Package config reads mcpkey's config file (config.toml) into Settings.
//
// The file is decoded with github.com/pelletier/go-toml/v2 into a schema
// struct (file, in decode.go) with strict decoding, so an unknown key is an
// error; then each value is checked (URLs, durations, globs, secret
// references, loopback addresses). Every problem is a *SettingsError naming
// file:line:column of the key or value, with a "did you mean" for typos;
// positions come from go-toml's own parser (unstable.Parser), so nothing
// here scans TOML by hand.
//
// A *Settings is immutable once returned: the agent swaps in a new one on
// reload (agent.WatchSettings). The agent package re-exports these types
// under their old names (agent.Settings, agent.ServerSettings, …).
package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/agent/store"
)

// Defaults for the settings whose zero value means "the default".
const (
	DefaultKeyringTimeout  = 10 * time.Second
	DefaultLoginWait       = 5 * time.Minute
	DefaultRemember        = 8 * time.Hour
	DefaultApprovalTimeout = 60 * time.Second
	DefaultWSListen        = "127.0.0.1:0"
)

// BackendNames lists the storage backend names the config (and --backend,
// MCPKEY_BACKEND) accepts: the keyring backends, and memory.
func BackendNames() []string { return append(store.Backends(), "memory") }

// Settings is the parsed config file (config.toml). Every field is optional;
// the zero value is "no config file": all defaults, no named servers.
// A *Settings is immutable once returned: a reload produces a new one.
//
// Durations are written as Go duration strings ("10s", "5m", "8h"). A zero
// duration means the documented default; the config itself refuses "0s"
// where zero would be meaningless.
type Settings struct {
	// Path is the file these settings were read from ("" when built in code).
	Path string

	// Backend is the credential store: one of BackendNames. "" means "auto".
	Backend string
	// KeyringTimeout bounds every keyring call; 0 means DefaultKeyringTimeout.
	KeyringTimeout time.Duration
	// LogLevel is the agent's log level (debug, info, warn, error); the zero
	// value is info.
	LogLevel slog.Level
	// PassphraseFile holds the file backend's passphrase (absolute; "~" and
	// paths relative to the config file are resolved).
	PassphraseFile string
	// RefreshMargin is how long before expiry a token is refreshed; 0 means
	// the agent's default.
	RefreshMargin time.Duration
	// LoginWait is how long a bridge or caller waits for a login the user
	// must finish; 0 means DefaultLoginWait.
	LoginWait time.Duration

	// WSListen enables the loopback WebSocket transport on this address
	// (loopback only); "" leaves it off unless --ws is given, in which case
	// DefaultWSListen is used.
	WSListen string
	// WSAllowedOrigins are the Origin values (such as one browser
	// extension's "chrome-extension://ID") allowed to open the WebSocket.
	WSAllowedOrigins []string

	// Confirm makes every token request from a caller not on Allow wait for
	// the user's approval (default false, as ssh-agent).
	Confirm bool
	// Approval is who may answer an approval: ApprovalPrompt ("", the
	// default: the tray or `mcpkey approve` with a code), ApprovalPolkit
	// (only polkit's authentication dialog) or ApprovalTouchID (not built).
	Approval string
	// Allow and Deny are executable paths or globs (filepath.Match syntax)
	// approved without asking, or always refused.
	Allow []string
	Deny  []string
	// Remember is how long an approval holds; 0 means DefaultRemember.
	Remember time.Duration
	// ApprovalTimeout is how long a request waits for the user's answer;
	// 0 means DefaultApprovalTimeout.
	ApprovalTimeout time.Duration
	// LockOnScreenLock locks the agent when the session's screen locks.
	LockOnScreenLock bool
	// LockAfterIdle locks the agent after this long without a request;
	// 0 means never.
	LockAfterIdle time.Duration

	// Servers maps a configured name to its server.
	Servers map[string]ServerSettings
	// Issuers holds per-authorization-server options ([issuers."URL"]
	// tables), keyed by the issuer exactly as its metadata names it.
	Issuers map[string]IssuerSettings
	// IdPs are the identity providers ([idps.NAME] tables) that
	// enterprise-managed authorization exchanges sign-ins at.
	IdPs map[string]IdPSettings
	// RestrictedSockets are extra sockets that serve only token.get for the
	// listed servers ([[restricted_socket]] tables).
	RestrictedSockets []RestrictedSocketSettings
}

// ServerSettings is one [servers.NAME] table.
type ServerSettings struct {
	// Name is the table's name (the key in Settings.Servers).
	Name string
	// URL is the MCP server endpoint exactly as written: an absolute http(s)
	// URL without fragment or userinfo.
	URL string
	// Scopes requested at login when the server does not say which it needs.
	Scopes []string
	// Account is the default account label for this server.
	Account string
	// ClientID, ClientSecretFile and ClientMetadataURL describe a
	// pre-registered client (or a Client ID Metadata Document). The secret
	// itself is never written in the config.
	ClientID          string
	ClientSecretFile  string
	ClientMetadataURL string
	// RedirectPort fixes the loopback callback port (0: ephemeral).
	RedirectPort int
	// AllowPrivateNetwork lets discovery reach private, link-local and CGNAT
	// addresses for this server.
	AllowPrivateNetwork bool
	// ResourceAsAudience also sends the resource as "audience" on the
	// authorization, token and refresh requests, for authorization servers
	// that take the audience from that parameter rather than RFC 8707
	// "resource" (Ory Hydra, Auth0). See also IssuerSettings.
	ResourceAsAudience bool
	// DPoP forces key-bound (RFC 9449) tokens on (true) or off (false) for
	// this server; nil decides per login: key-bound when the resource asks
	// for DPoP and its authorization server offers it.
	DPoP *bool

	// Confirm, Approval, Allow, Deny and Remember override the top-level
	// approval policy for this server: nil, "" and 0 inherit; see
	// ApprovalPolicy.
	Confirm  *bool
	Approval string
	Allow    []string
	Deny     []string
	Remember time.Duration

	// Headers are static request headers whose values come from stored
	// secrets: header name → "secret:NAME".
	Headers map[string]string
	// Env maps environment variables for `mcpkey exec` to "token" (this
	// server's access token) or "secret:NAME" (a stored secret).
	Env map[string]string

	// GrantSettings choose a grant without a browser (grants.go).
	GrantSettings
}

// IssuerSettings is one [issuers."URL"] table: options for every server
// whose authorization server has that issuer.
type IssuerSettings struct {
	// ResourceAsAudience is ServerSettings.ResourceAsAudience for every
	// server of this issuer.
	ResourceAsAudience bool
}

// ResourceAsAudience reports whether logins and refreshes for server (its
// settings, zero when not configured) at issuer send the resource as
// "audience" too: set for the server or for the issuer.
func (s *Settings) ResourceAsAudience(server ServerSettings, issuer string) bool {
	if server.ResourceAsAudience {
		return true
	}
	if s == nil {
		return false
	}
	return s.Issuers[issuer].ResourceAsAudience
}

// RestrictedSocketSettings is one [[restricted_socket]] table.
type RestrictedSocketSettings struct {
	// Path of the socket (absolute; "~" and relative paths resolved).
	Path string
	// Servers are configured names or URLs this socket may hand tokens for.
	Servers []string
	// TTL removes the socket after this long; 0 means for the agent's life.
	TTL time.Duration
}

// Who answers an approval (Settings.Approval, per server too).
const (
	// ApprovalPrompt: the tray, or `mcpkey approve` in a terminal with the
	// code the agent writes there. The default.
	ApprovalPrompt = "prompt"
	// ApprovalPolkit: only polkit's authentication dialog. The agent asks
	// polkit itself; the desktop's authentication agent asks for the
	// user's own password (auth_self), and no socket caller, tray click or
	// terminal code can stand in for it.
	ApprovalPolkit = "polkit"
	// ApprovalTouchID: macOS's LocalAuthentication prompt. Not built: every
	// approval fails closed.
	ApprovalTouchID = "touchid"
)

// ApprovalModes are the values the approval key accepts.
var ApprovalModes = []string{ApprovalPrompt, ApprovalPolkit, ApprovalTouchID}

// ApprovalPolicy is the effective approval policy for one server.
type ApprovalPolicy struct {
	Confirm  bool
	Approval string // ApprovalPrompt, ApprovalPolkit or ApprovalTouchID
	Allow    []string
	Deny     []string
	Remember time.Duration
	Timeout  time.Duration
}

// ApprovalPolicy returns the policy for server (a configured name or a URL):
// the server's confirm, allow and remember when set, else the top-level ones;
// deny is the union of both, so a server can never lift a global deny.
// Defaults are filled in.
func (s *Settings) ApprovalPolicy(server string) ApprovalPolicy {
	if s == nil {
		s = &Settings{}
	}
	p := ApprovalPolicy{
		Confirm:  s.Confirm,
		Approval: cmp.Or(s.Approval, ApprovalPrompt),
		Allow:    s.Allow,
		Deny:     s.Deny,
		Remember: cmp.Or(s.Remember, DefaultRemember),
		Timeout:  cmp.Or(s.ApprovalTimeout, DefaultApprovalTimeout),
	}
	if ss, ok := s.Server(server); ok {
		if ss.Confirm != nil {
			p.Confirm = *ss.Confirm
		}
		if ss.Approval != "" {
			p.Approval = ss.Approval
		}
		if ss.Allow != nil {
			p.Allow = ss.Allow
		}
		p.Deny = slices.Concat(s.Deny, ss.Deny)
		if ss.Remember > 0 {
			p.Remember = ss.Remember
		}
	}
	return p
}

// SettingsError is a problem in the config file, located at Line:Column
// (1-based; 0 when unknown).
type SettingsError struct {
	Path   string
	Line   int
	Column int
	Msg    string
}

func (e *SettingsError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
}

// Server resolves a configured name, or a URL, to its [servers.NAME] entry.
// A URL matches a server whose url is the same string, else one whose
// canonical form (CanonicalServerURL) is the same; when several match, the
// first name in sorted order wins. ok is false for anything not configured.
func (s *Settings) Server(nameOrURL string) (ServerSettings, bool) {
	if s == nil || len(s.Servers) == 0 || nameOrURL == "" {
		return ServerSettings{}, false
	}
	if ss, ok := s.Servers[nameOrURL]; ok {
		return ss, true
	}
	if !strings.Contains(nameOrURL, "://") {
		return ServerSettings{}, false
	}
	names := slices.Sorted(maps.Keys(s.Servers))
	for _, n := range names {
		if s.Servers[n].URL == nameOrURL {
			return s.Servers[n], true
		}
	}
	want, err := CanonicalServerURL(nameOrURL)
	if err != nil {
		return ServerSettings{}, false
	}
	for _, n := range names {
		if got, err := CanonicalServerURL(s.Servers[n].URL); err == nil && got == want {
			return s.Servers[n], true
		}
	}
	return ServerSettings{}, false
}

// NameFor returns the configured name of the server at serverURL, or "".
func (s *Settings) NameFor(serverURL string) string {
	if !strings.Contains(serverURL, "://") {
		return ""
	}
	ss, _ := s.Server(serverURL)
	return ss.Name
}

// CanonicalServerURL returns the canonical form of an MCP server URL (MCP
// 2025-11-25 "Canonical Server URI"): scheme and host lowercased, the
// default port (:443 for https, :80 for http) and any fragment dropped. The
// path and query are kept byte for byte: a pathless URL gets no "/" added
// and a trailing slash is neither added nor removed, since either may matter
// to the server. Only absolute http and https URLs without userinfo are
// accepted.
func CanonicalServerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole string; keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("invalid server URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("invalid server URL %q: expected an absolute http(s) URL", redactedURL(u))
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("invalid server URL %q: expected an absolute http(s) URL with a host", redactedURL(u))
	}
	if u.User != nil {
		return "", fmt.Errorf("invalid server URL %q: userinfo is not allowed", redactedURL(u))
	}
	// Work on the original string so the path and query keep their exact
	// bytes (url.URL.String may re-escape them).
	rest := s[len(u.Scheme)+len("://"):]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	tail := rest[end:]
	if i := strings.IndexByte(tail, '#'); i >= 0 {
		tail = tail[:i]
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host + tail, nil
}

// SecretRef reports whether v is a reference to a stored secret
// ("secret:NAME") and returns NAME.
func SecretRef(v string) (name string, ok bool) {
	name, ok = strings.CutPrefix(v, "secret:")
	return name, ok && secretNameRe.MatchString(name)
}

var secretNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// RedactURL hides userinfo, query and fragment (they may hold a password
// or a key) before a URL goes into a message; a string that does not parse
// is not shown at all.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	return redactedURL(u)
}

// redactedURL is u with "REDACTED" for its userinfo and query, so the
// message still shows where the problem is, and without its fragment.
func redactedURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("REDACTED")
	}
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "REDACTED", false
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}
