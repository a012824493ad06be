package agent

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

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

	// Confirm, Allow, Deny and Remember override the top-level approval
	// policy for this server: nil and 0 inherit; see ApprovalPolicy.
	Confirm  *bool
	Allow    []string
	Deny     []string
	Remember time.Duration
	// Approval overrides Settings.Approval for this server ("": inherit).
	Approval string

	// Headers are static request headers whose values come from stored
	// secrets: header name → "secret:NAME".
	Headers map[string]string
	// Env maps environment variables for `mcpkey exec` to "token" (this
	// server's access token) or "secret:NAME" (a stored secret).
	Env map[string]string
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

// LoadSettings reads and validates the config file at path. A missing file
// is not an error: mcpkey works without one, and the result is the empty
// Settings (with Path set). Errors in the file are reported as
// *SettingsError (several are joined; use errors.As).
func LoadSettings(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Settings{Path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseSettings(path, data)
}

// ParseSettings parses and validates a config file's content. path names the
// file in errors and anchors relative paths in it.
func ParseSettings(path string, data []byte) (*Settings, error) {
	src := string(data)
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := lineCol(src, pe.Position.Start)
			if pe.Position.Line > 0 && line != pe.Position.Line {
				line, col = pe.Position.Line, pe.Position.Col
			}
			return nil, &SettingsError{Path: path, Line: line, Column: col, Msg: tidyMessage(pe.Message)}
		}
		return nil, &SettingsError{Path: path, Msg: err.Error()}
	}
	d := &decoder{path: path, src: src, pos: locateKeys(src), dir: filepath.Dir(path)}
	s := d.settings(raw)
	if err := d.err(); err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
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

// tidyMessage makes the TOML library's messages read as ours: lowercase
// start, no final period.
func tidyMessage(m string) string {
	m = strings.TrimSuffix(strings.TrimSpace(m), ".")
	if r, n := utf8.DecodeRuneInString(m); n > 0 && unicode.IsUpper(r) {
		m = string(unicode.ToLower(r)) + m[n:]
	}
	return m
}

// SecretRef reports whether v is a reference to a stored secret
// ("secret:NAME") and returns NAME.
func SecretRef(v string) (name string, ok bool) {
	name, ok = strings.CutPrefix(v, "secret:")
	return name, ok && secretNameRe.MatchString(name)
}

var (
	serverNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	secretNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Keys each table accepts; anything else is an error, so typos are caught.
var (
	topKeys = []string{"backend", "keyring_timeout", "log_level", "passphrase_file", "refresh_margin",
		"login_wait", "ws_listen", "ws_allowed_origins", "confirm", "approval", "allow", "deny", "remember",
		"approval_timeout", "lock_on_screen_lock", "lock_after_idle", "servers", "issuers", "restricted_socket"}
	serverKeys = []string{"url", "scopes", "account", "client_id", "client_secret_file", "client_metadata_url",
		"redirect_port", "allow_private_network", "resource_as_audience", "confirm", "approval", "allow", "deny", "remember", "headers", "env"}
	issuerKeys = []string{"resource_as_audience"}
	socketKeys = []string{"path", "servers", "ttl"}
)

// decoder walks the generic TOML tree with the schema by hand: it knows
// every key's position (locateKeys), so each error names file:line:column,
// which BurntSushi/toml gives only for syntax errors.
type decoder struct {
	path string
	src  string
	dir  string // config file's directory, for relative paths
	pos  map[string]keyPos
	errs []*SettingsError
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *SettingsError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(d.errs) == 1 {
		return d.errs[0]
	}
	const max = 10
	errs := make([]error, 0, max)
	for _, e := range d.errs[:min(len(d.errs), max)] {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// at records an error about key; onValue points at the value rather than
// the key.
func (d *decoder) at(key []string, onValue bool, format string, args ...any) {
	e := &SettingsError{Path: d.path, Msg: displayKey(key) + ": " + fmt.Sprintf(format, args...)}
	for k := key; len(k) > 0; k = k[:len(k)-1] {
		if p, ok := d.pos[joinKey(k)]; ok {
			at := p.key
			if onValue && len(k) == len(key) && p.val.line > 0 {
				at = p.val
			}
			e.Line, e.Column = at.line, at.col
			break
		}
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) unknown(key []string, known []string) {
	name := key[len(key)-1]
	if best := closest(name, known); best != "" {
		d.at(key, false, "unknown key (did you mean %q?)", best)
		return
	}
	d.at(key, false, "unknown key")
}

func sub(key []string, k string) []string { return append(slices.Clip(key), k) }

func (d *decoder) settings(raw map[string]any) *Settings {
	s := &Settings{}
	for _, k := range sortedKeys(raw) {
		v, key := raw[k], []string{k}
		switch k {
		case "backend":
			if b, ok := d.str(key, v); ok {
				if names := BackendNames(); !slices.Contains(names, b) {
					d.at(key, true, "unknown backend %q (expected one of %s)", b, strings.Join(names, ", "))
				}
				s.Backend = b
			}
		case "keyring_timeout":
			s.KeyringTimeout = d.duration(key, v, false)
		case "log_level":
			if l, ok := d.str(key, v); ok {
				switch strings.ToLower(l) {
				case "debug", "info", "warn", "error":
					_ = s.LogLevel.UnmarshalText([]byte(l))
				default:
					d.at(key, true, "expected one of debug, info, warn, error, got %q", l)
				}
			}
		case "passphrase_file":
			s.PassphraseFile = d.file(key, v)
		case "refresh_margin":
			s.RefreshMargin = d.duration(key, v, false)
		case "login_wait":
			s.LoginWait = d.duration(key, v, false)
		case "ws_listen":
			s.WSListen = d.listen(key, v)
		case "ws_allowed_origins":
			s.WSAllowedOrigins = d.origins(key, v)
		case "confirm":
			s.Confirm, _ = d.bool(key, v)
		case "approval":
			s.Approval = d.approval(key, v)
		case "allow":
			s.Allow = d.globs(key, v)
		case "deny":
			s.Deny = d.globs(key, v)
		case "remember":
			s.Remember = d.duration(key, v, false)
		case "approval_timeout":
			s.ApprovalTimeout = d.duration(key, v, false)
		case "lock_on_screen_lock":
			s.LockOnScreenLock, _ = d.bool(key, v)
		case "lock_after_idle":
			s.LockAfterIdle = d.duration(key, v, true)
		case "servers":
			if t, ok := d.table(key, v); ok {
				s.Servers = make(map[string]ServerSettings, len(t))
				for _, name := range sortedKeys(t) {
					if ss, ok := d.server(sub(key, name), t[name]); ok {
						s.Servers[name] = ss
					}
				}
			}
		case "issuers":
			if t, ok := d.table(key, v); ok {
				s.Issuers = make(map[string]IssuerSettings, len(t))
				for _, iss := range sortedKeys(t) {
					s.Issuers[iss] = d.issuer(sub(key, iss), t[iss])
				}
			}
		case "restricted_socket":
			arr, ok := v.([]map[string]any)
			if !ok {
				d.at(key, true, "expected [[restricted_socket]] tables, got %s", tomlType(v))
				continue
			}
			for i, t := range arr {
				s.RestrictedSockets = append(s.RestrictedSockets, d.socket(sub(key, "["+strconv.Itoa(i)+"]"), t))
			}
		default:
			d.unknown(key, topKeys)
		}
	}
	for i, rs := range s.RestrictedSockets {
		for j, name := range rs.Servers {
			if _, ok := s.Server(name); !ok && !strings.Contains(name, "://") {
				d.at([]string{"restricted_socket", "[" + strconv.Itoa(i) + "]", "servers", "[" + strconv.Itoa(j) + "]"},
					true, "%q is neither a configured server nor a URL", name)
			}
		}
	}
	return s
}

func (d *decoder) server(key []string, v any) (ServerSettings, bool) {
	name := key[len(key)-1]
	t, ok := d.table(key, v)
	if !ok {
		return ServerSettings{}, false
	}
	if !serverNameRe.MatchString(name) {
		d.at(key, false, "invalid server name %q (use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)", name)
	}
	ss := ServerSettings{Name: name}
	for _, k := range sortedKeys(t) {
		v, key := t[k], sub(key, k)
		switch k {
		case "url":
			if u, ok := d.str(key, v); ok {
				pu, err := url.Parse(u)
				switch {
				case err == nil && pu.User != nil:
					d.at(key, true, "userinfo is not allowed in a server URL, got %q", redactURL(u))
				case err == nil && strings.Contains(u, "#"):
					d.at(key, true, "a fragment is not allowed in a server URL, got %q", u)
				default:
					if _, err := CanonicalServerURL(u); err != nil {
						d.at(key, true, "expected an absolute http(s) URL, got %q", u)
					}
				}
				ss.URL = u
			}
		case "scopes":
			ss.Scopes = d.strs(key, v)
			for i, sc := range ss.Scopes {
				if !validScope(sc) {
					d.at(sub(key, "["+strconv.Itoa(i)+"]"), true, "invalid scope %q (no spaces, quotes or backslashes)", sc)
				}
			}
		case "account":
			ss.Account, _ = d.str(key, v)
		case "client_id":
			ss.ClientID, _ = d.str(key, v)
		case "client_secret_file":
			ss.ClientSecretFile = d.file(key, v)
		case "client_metadata_url":
			if u, ok := d.str(key, v); ok {
				if !validMetadataURL(u) {
					d.at(key, true, "expected an https URL with a path (http only on loopback), got %q", redactURL(u))
				}
				ss.ClientMetadataURL = u
			}
		case "redirect_port":
			n, ok := v.(int64)
			switch {
			case !ok:
				d.at(key, true, "expected an integer, got %s", tomlType(v))
			case n < 0 || n > 65535:
				d.at(key, true, "expected a port between 0 and 65535, got %d", n)
			default:
				ss.RedirectPort = int(n)
			}
		case "allow_private_network":
			ss.AllowPrivateNetwork, _ = d.bool(key, v)
		case "resource_as_audience":
			ss.ResourceAsAudience, _ = d.bool(key, v)
		case "confirm":
			if b, ok := d.bool(key, v); ok {
				ss.Confirm = &b
			}
		case "approval":
			ss.Approval = d.approval(key, v)
		case "allow":
			ss.Allow = d.globs(key, v)
			if ss.Allow == nil {
				ss.Allow = []string{} // written, even empty: overrides the top level
			}
		case "deny":
			ss.Deny = d.globs(key, v)
		case "remember":
			ss.Remember = d.duration(key, v, false)
		case "headers":
			ss.Headers = d.strMap(key, v, func(key []string, h, val string) {
				if !validHeaderName(h) {
					d.at(key, false, "invalid header name %q", h)
				}
				if _, ok := SecretRef(val); !ok {
					d.at(key, true, `expected "secret:NAME" (store the value with `+"`mcpkey secret set NAME`"+`; header values are never written in the config)`)
				}
			})
		case "env":
			ss.Env = d.strMap(key, v, func(key []string, name, val string) {
				if !envNameRe.MatchString(name) {
					d.at(key, false, "invalid environment variable name %q", name)
				}
				if _, ok := SecretRef(val); !ok && val != "token" {
					d.at(key, true, `expected "token" or "secret:NAME"`)
				}
			})
		case "client_secret":
			d.at(key, false, "a client secret must not be written in the config\nhint: put it in a file and set client_secret_file = \"PATH\", or store it with `mcpkey secret set`")
		default:
			d.unknown(key, serverKeys)
		}
	}
	if _, ok := t["url"]; !ok {
		d.at(key, false, "missing url")
	}
	return ss, true
}

func (d *decoder) issuer(key []string, v any) IssuerSettings {
	var is IssuerSettings
	if u, err := url.Parse(key[len(key)-1]); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.at(key, false, "expected an issuer URL as the table name, got %q", key[len(key)-1])
	}
	t, ok := d.table(key, v)
	if !ok {
		return is
	}
	for _, k := range sortedKeys(t) {
		v, key := t[k], sub(key, k)
		switch k {
		case "resource_as_audience":
			is.ResourceAsAudience, _ = d.bool(key, v)
		default:
			d.unknown(key, issuerKeys)
		}
	}
	return is
}

func (d *decoder) socket(key []string, t map[string]any) RestrictedSocketSettings {
	var rs RestrictedSocketSettings
	for _, k := range sortedKeys(t) {
		v, key := t[k], sub(key, k)
		switch k {
		case "path":
			rs.Path = d.file(key, v)
		case "servers":
			rs.Servers = d.strs(key, v)
			if len(rs.Servers) == 0 {
				d.at(key, true, "expected at least one server")
			}
		case "ttl":
			rs.TTL = d.duration(key, v, false)
		default:
			d.unknown(key, socketKeys)
		}
	}
	for _, req := range []string{"path", "servers"} {
		if _, ok := t[req]; !ok {
			d.at(key, false, "missing %s", req)
		}
	}
	return rs
}

func (d *decoder) str(key []string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		d.at(key, true, "expected a string, got %s", tomlType(v))
	}
	return s, ok
}

// approval reads an approval key: one of ApprovalModes.
func (d *decoder) approval(key []string, v any) string {
	s, ok := d.str(key, v)
	if ok && !slices.Contains(ApprovalModes, s) {
		d.at(key, true, "expected one of %s, got %q", strings.Join(ApprovalModes, ", "), s)
		return ""
	}
	return s
}

func (d *decoder) bool(key []string, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		d.at(key, true, "expected true or false, got %s", tomlType(v))
	}
	return b, ok
}

func (d *decoder) table(key []string, v any) (map[string]any, bool) {
	t, ok := v.(map[string]any)
	if !ok {
		d.at(key, true, "expected a table, got %s", tomlType(v))
	}
	return t, ok
}

func (d *decoder) strs(key []string, v any) []string {
	arr, ok := v.([]any)
	if !ok {
		d.at(key, true, "expected an array of strings, got %s", tomlType(v))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		if s, ok := d.str(sub(key, "["+strconv.Itoa(i)+"]"), e); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) strMap(key []string, v any, check func(key []string, k, v string)) map[string]string {
	t, ok := d.table(key, v)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(t))
	for _, k := range sortedKeys(t) {
		if s, ok := d.str(sub(key, k), t[k]); ok {
			check(sub(key, k), k, s)
			out[k] = s
		}
	}
	return out
}

// duration parses a Go duration string; zero is refused unless zeroOK,
// because a zero means "the default" in Settings.
func (d *decoder) duration(key []string, v any, zeroOK bool) time.Duration {
	s, ok := d.str(key, v)
	if !ok {
		return 0
	}
	dur, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.at(key, true, "expected a duration such as \"30s\", \"5m\" or \"8h\", got %q", s)
	case dur < 0:
		d.at(key, true, "expected a positive duration, got %q", s)
	case dur == 0 && !zeroOK:
		d.at(key, true, "expected a positive duration, got %q (leave the key out for the default)", s)
	}
	return max(dur, 0)
}

// file resolves a path: "~/" is the home directory and a relative path is
// relative to the config file's directory.
func (d *decoder) file(key []string, v any) string {
	p, ok := d.str(key, v)
	if !ok {
		return ""
	}
	switch {
	case p == "":
		d.at(key, true, "expected a file path, got \"\"")
		return ""
	case p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`):
		home, err := os.UserHomeDir()
		if err != nil {
			d.at(key, true, "cannot expand ~: %v", err)
			return p
		}
		return filepath.Join(home, p[1:])
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	default:
		dir, err := filepath.Abs(d.dir)
		if err != nil {
			return p
		}
		return filepath.Join(dir, p)
	}
}

func (d *decoder) listen(key []string, v any) string {
	s, ok := d.str(key, v)
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		d.at(key, true, "expected HOST:PORT on loopback such as %q, got %q", DefaultWSListen, s)
		return s
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		d.at(key, true, "expected a port between 0 and 65535, got %q", port)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		d.at(key, true, "the WebSocket listens on loopback only (127.0.0.1, ::1 or localhost), got %q", host)
	}
	return s
}

func (d *decoder) origins(key []string, v any) []string {
	list := d.strs(key, v)
	for i, o := range list {
		u, err := url.Parse(o)
		if o == "*" || o == "null" || err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			d.at(sub(key, "["+strconv.Itoa(i)+"]"), true, "expected an origin such as \"chrome-extension://ID\" (scheme://host, no wildcard), got %q", o)
		}
	}
	return list
}

func (d *decoder) globs(key []string, v any) []string {
	list := d.strs(key, v)
	for i, g := range list {
		if _, err := filepath.Match(g, ""); err != nil || g == "" {
			d.at(sub(key, "["+strconv.Itoa(i)+"]"), true, "invalid pattern %q", g)
		}
	}
	return list
}

func validScope(s string) bool {
	if s == "" {
		return false
	}
	// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validMetadataURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Fragment != "" || u.Host == "" || u.Path == "" || u.Path == "/" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		return h == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}

// redactURL hides userinfo, query and fragment (they may hold a password
// or a key) before a URL goes into a message; a string that does not parse
// is not shown at all.
func redactURL(s string) string {
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

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// closest suggests the known key nearest to a typo (edit distance ≤ 2).
func closest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dist := editDistance(name, k); dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// displayKey writes a key path as TOML would: dotted, quoting parts that
// are not bare keys; array indexes as [N].
func displayKey(key []string) string {
	var b strings.Builder
	for i, k := range key {
		switch {
		case strings.HasPrefix(k, "[") && strings.HasSuffix(k, "]"):
			b.WriteString(k)
			continue
		case i > 0:
			b.WriteByte('.')
		}
		if bareKeyRe.MatchString(k) {
			b.WriteString(k)
		} else {
			b.WriteString(strconv.Quote(k))
		}
	}
	return b.String()
}

var bareKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func joinKey(key []string) string { return strings.Join(key, "\x00") }

// Locating keys. BurntSushi/toml records every key's position but does not
// export it (MetaData.keyInfo), so this small scanner walks the (already
// validated) document and records where each key and value starts.

type srcPos struct{ line, col int }

type keyPos struct{ key, val srcPos }

type keyScanner struct {
	s     string
	i     int
	lines []int // byte offset of each line start
	out   map[string]keyPos
}

func locateKeys(src string) map[string]keyPos {
	sc := &keyScanner{s: src, out: map[string]keyPos{}, lines: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			sc.lines = append(sc.lines, i+1)
		}
	}
	sc.document()
	return sc.out
}

// lineCol turns a byte offset into a 1-based line and (rune) column.
func lineCol(src string, off int) (int, int) {
	off = min(max(off, 0), len(src))
	line := strings.Count(src[:off], "\n") + 1
	start := strings.LastIndexByte(src[:off], '\n') + 1
	return line, utf8.RuneCountInString(src[start:off]) + 1
}

func (sc *keyScanner) at(off int) srcPos {
	n, _ := slices.BinarySearch(sc.lines, off+1)
	line := n // lines[n-1] <= off
	return srcPos{line: line, col: utf8.RuneCountInString(sc.s[sc.lines[line-1]:off]) + 1}
}

func (sc *keyScanner) eof() bool { return sc.i >= len(sc.s) }

// space skips blanks; with newlines, also newlines and comments.
func (sc *keyScanner) space(newlines bool) {
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t':
			sc.i++
		case newlines && (c == '\n' || c == '\r'):
			sc.i++
		case newlines && c == '#':
			for !sc.eof() && sc.s[sc.i] != '\n' {
				sc.i++
			}
		default:
			return
		}
	}
}

func (sc *keyScanner) document() {
	var table []string
	arrays := map[string]int{}
	for {
		sc.space(true)
		if sc.eof() {
			return
		}
		if sc.s[sc.i] != '[' {
			if !sc.keyval(table) {
				return
			}
			continue
		}
		start := sc.i
		array := strings.HasPrefix(sc.s[sc.i:], "[[")
		sc.i += 1 + b2i(array)
		sc.space(false)
		key, ok := sc.key()
		if !ok {
			return
		}
		sc.space(false)
		sc.i += 1 + b2i(array) // ] or ]]
		if array {
			n := arrays[joinKey(key)]
			arrays[joinKey(key)]++
			key = append(key, "["+strconv.Itoa(n)+"]")
		}
		table = key
		sc.record(table, start, start)
	}
}

func (sc *keyScanner) record(key []string, kOff, vOff int) {
	k := joinKey(key)
	if _, ok := sc.out[k]; !ok {
		sc.out[k] = keyPos{key: sc.at(kOff), val: sc.at(vOff)}
	}
}

func (sc *keyScanner) keyval(prefix []string) bool {
	kOff := sc.i
	key, ok := sc.key()
	if !ok {
		return false
	}
	sc.space(false)
	if sc.eof() || sc.s[sc.i] != '=' {
		return false
	}
	sc.i++
	sc.space(false)
	full := slices.Concat(prefix, key)
	for n := len(prefix) + 1; n < len(full); n++ { // dotted parents
		sc.record(full[:n], kOff, kOff)
	}
	sc.record(full, kOff, sc.i)
	return sc.value(full)
}

// key reads a dotted key of bare and quoted parts.
func (sc *keyScanner) key() ([]string, bool) {
	var parts []string
	for {
		sc.space(false)
		if sc.eof() {
			return nil, false
		}
		switch sc.s[sc.i] {
		case '"', '\'':
			start := sc.i
			if !sc.str() {
				return nil, false
			}
			lit := sc.s[start:sc.i]
			if lit[0] == '\'' {
				parts = append(parts, lit[1:len(lit)-1])
			} else if u, err := strconv.Unquote(lit); err == nil {
				parts = append(parts, u)
			} else {
				parts = append(parts, lit[1:len(lit)-1])
			}
		default:
			start := sc.i
			for !sc.eof() && isBare(sc.s[sc.i]) {
				sc.i++
			}
			if sc.i == start {
				return nil, false
			}
			parts = append(parts, sc.s[start:sc.i])
		}
		sc.space(false)
		if sc.eof() || sc.s[sc.i] != '.' {
			return parts, true
		}
		sc.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (sc *keyScanner) value(key []string) bool {
	if sc.eof() {
		return false
	}
	switch sc.s[sc.i] {
	case '"', '\'':
		return sc.str()
	case '[':
		sc.i++
		for n := 0; ; n++ {
			sc.space(true)
			if sc.eof() {
				return false
			}
			if sc.s[sc.i] == ']' {
				sc.i++
				return true
			}
			elem := sub(key, "["+strconv.Itoa(n)+"]")
			sc.record(elem, sc.i, sc.i)
			if !sc.value(elem) {
				return false
			}
			sc.space(true)
			if !sc.eof() && sc.s[sc.i] == ',' {
				sc.i++
			}
		}
	case '{':
		sc.i++
		for {
			sc.space(true)
			if sc.eof() {
				return false
			}
			if sc.s[sc.i] == '}' {
				sc.i++
				return true
			}
			if !sc.keyval(key) {
				return false
			}
			sc.space(true)
			if !sc.eof() && sc.s[sc.i] == ',' {
				sc.i++
			}
		}
	default:
		for !sc.eof() && strings.IndexByte(" \t\r\n,]}#", sc.s[sc.i]) < 0 {
			sc.i++
		}
		return true
	}
}

// str skips a basic, literal or multi-line string starting at sc.i.
func (sc *keyScanner) str() bool {
	q := sc.s[sc.i]
	triple := strings.Repeat(string(q), 3)
	if strings.HasPrefix(sc.s[sc.i:], triple) {
		sc.i += 3
		for !sc.eof() {
			if q == '"' && sc.s[sc.i] == '\\' {
				sc.i += 2
				continue
			}
			if strings.HasPrefix(sc.s[sc.i:], triple) {
				sc.i += 3
				for n := 0; n < 2 && !sc.eof() && sc.s[sc.i] == q; n++ { // """a"""" ends with quotes in the content
					sc.i++
				}
				return true
			}
			sc.i++
		}
		return false
	}
	sc.i++
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == '\\' && q == '"':
			sc.i += 2
		case c == q:
			sc.i++
			return true
		case c == '\n':
			return false
		default:
			sc.i++
		}
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
