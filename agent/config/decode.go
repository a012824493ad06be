package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// file is the config file's schema: go-toml decodes into it strictly, so a
// key it does not name is an error. Durations and paths stay strings here;
// check turns them into Settings. The toml tags are the documented keys.
type file struct {
	Backend          string            `toml:"backend"`
	KeyringTimeout   string            `toml:"keyring_timeout"`
	LogLevel         string            `toml:"log_level"`
	PassphraseFile   string            `toml:"passphrase_file"`
	RefreshMargin    string            `toml:"refresh_margin"`
	LoginWait        string            `toml:"login_wait"`
	WSListen         string            `toml:"ws_listen"`
	WSAllowedOrigins []string          `toml:"ws_allowed_origins"`
	Confirm          bool              `toml:"confirm"`
	Approval         string            `toml:"approval"`
	Allow            []string          `toml:"allow"`
	Deny             []string          `toml:"deny"`
	Remember         string            `toml:"remember"`
	ApprovalTimeout  string            `toml:"approval_timeout"`
	LockOnScreenLock bool              `toml:"lock_on_screen_lock"`
	LockAfterIdle    string            `toml:"lock_after_idle"`
	Servers          map[string]server `toml:"servers"`
	Issuers          map[string]issuer `toml:"issuers"`
	IdPs             map[string]idp    `toml:"idps"`
	RestrictedSocket []socket          `toml:"restricted_socket"`
}

type server struct {
	URL                 string            `toml:"url"`
	Scopes              []string          `toml:"scopes"`
	Account             string            `toml:"account"`
	ClientID            string            `toml:"client_id"`
	ClientSecretFile    string            `toml:"client_secret_file"`
	ClientMetadataURL   string            `toml:"client_metadata_url"`
	RedirectPort        int64             `toml:"redirect_port"`
	AllowPrivateNetwork bool              `toml:"allow_private_network"`
	ResourceAsAudience  bool              `toml:"resource_as_audience"`
	DPoP                *bool             `toml:"dpop"`
	Confirm             *bool             `toml:"confirm"`
	Approval            string            `toml:"approval"`
	Allow               []string          `toml:"allow"`
	Deny                []string          `toml:"deny"`
	Remember            string            `toml:"remember"`
	Headers             map[string]string `toml:"headers"`
	Env                 map[string]string `toml:"env"`
	// Grants without a browser (grants.go).
	Grant             string `toml:"grant"`
	ClientSecret      string `toml:"client_secret"`
	ClientKey         string `toml:"client_key"`
	ClientKeyAlg      string `toml:"client_key_alg"`
	WorkloadTokenFile string `toml:"workload_token_file"`
	WorkloadTokenEnv  string `toml:"workload_token_env"`
	IdP               string `toml:"idp"`
}

type issuer struct {
	ResourceAsAudience bool `toml:"resource_as_audience"`
}

type socket struct {
	Path    string   `toml:"path"`
	Servers []string `toml:"servers"`
	TTL     string   `toml:"ttl"`
}

// Keys lists the keys of the top level, of a [servers.NAME] table and of a
// [[restricted_socket]] table (the README's example documents each).
func Keys() (top, servers, sockets []string) {
	return tags(reflect.TypeFor[file]()), tags(reflect.TypeFor[server]()), tags(reflect.TypeFor[socket]())
}

// Load reads and validates the config file at path. A missing file is not
// an error: mcpkey works without one, and the result is the empty Settings
// (with Path set). Errors in the file are reported as *SettingsError
// (several are joined; use errors.As).
func Load(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Settings{Path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a config file's content. path names the file
// in errors and anchors relative paths in it.
func Parse(path string, data []byte) (*Settings, error) {
	d := &decoder{path: path, dir: filepath.Dir(path), ix: newIndex(data)}
	var f file
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&f)
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &strict):
		for i := range strict.Errors {
			d.unknown(&strict.Errors[i])
		}
	case errors.As(err, &de):
		return nil, d.decodeError(de)
	case err != nil:
		return nil, &SettingsError{Path: path, Msg: err.Error()}
	}
	s := d.check(&f)
	if err := d.err(); err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// decoder turns a decoded file into Settings, collecting every problem
// with its position.
type decoder struct {
	path string
	dir  string // config file's directory, for relative paths
	ix   *index
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
	errs := make([]error, 0, 10)
	for _, e := range d.errs[:min(len(d.errs), 10)] {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// at records an error about key; onValue points at the value rather than
// the key. A key the index does not know is placed at its nearest parent.
func (d *decoder) at(key []string, onValue bool, format string, args ...any) {
	e := &SettingsError{Path: d.path, Msg: displayKey(key) + ": " + fmt.Sprintf(format, args...)}
	for k := key; len(k) > 0; k = k[:len(k)-1] {
		if p, ok := d.ix.at[joinKey(k)]; ok {
			off := p.key
			if onValue && len(k) == len(key) {
				off = p.val
			}
			e.Line, e.Column = d.ix.lineCol(off)
			break
		}
	}
	d.errs = append(d.errs, e)
}

// unknown reports a key the schema does not have, suggesting the nearest
// known one.
func (d *decoder) unknown(e *toml.DecodeError) {
	key := []string(e.Key())
	if p, ok := d.ix.byKey[d.ix.offset(e.Position())]; ok {
		key = p
	}
	if len(key) == 0 {
		line, col := e.Position()
		d.errs = append(d.errs, &SettingsError{Path: d.path, Line: line, Column: col, Msg: "unknown key"})
		return
	}
	name := key[len(key)-1]
	if best := closest(name, tags(schemaType(key[:len(key)-1]))); best != "" {
		d.at(key, false, "unknown key (did you mean %q?)", best)
		return
	}
	d.at(key, false, "unknown key")
}

// decodeError turns go-toml's first error into ours: a value of the wrong
// type is named with the type the schema expects; anything else (syntax, a
// duplicate key) keeps go-toml's message.
func (d *decoder) decodeError(de *toml.DecodeError) error {
	off := d.ix.offset(de.Position())
	line, col := d.ix.lineCol(off)
	e := &SettingsError{Path: d.path, Line: line, Column: col, Msg: tidyMessage(strings.TrimPrefix(de.Error(), "toml: "))}
	if key, ok := d.ix.byVal[off]; ok {
		if t := schemaType(key); t != nil && !fits(t, d.ix.at[joinKey(key)].kind) {
			e.Msg = fmt.Sprintf("%s: expected %s, got %s", displayKey(key), expected(t, key), kindName(d.ix.at[joinKey(key)].kind))
		}
	}
	return e
}

func (d *decoder) has(key ...string) bool { _, ok := d.ix.at[joinKey(key)]; return ok }

func (d *decoder) check(f *file) *Settings {
	s := &Settings{
		Backend: f.Backend, WSAllowedOrigins: f.WSAllowedOrigins, Confirm: f.Confirm,
		Allow: f.Allow, Deny: f.Deny, LockOnScreenLock: f.LockOnScreenLock,
	}
	if d.has("backend") && !slices.Contains(BackendNames(), f.Backend) {
		d.at([]string{"backend"}, true, "unknown backend %q (expected one of %s)", f.Backend, strings.Join(BackendNames(), ", "))
	}
	if d.has("log_level") {
		switch strings.ToLower(f.LogLevel) {
		case "debug", "info", "warn", "error":
			_ = s.LogLevel.UnmarshalText([]byte(f.LogLevel))
		default:
			d.at([]string{"log_level"}, true, "expected one of debug, info, warn, error, got %q", f.LogLevel)
		}
	}
	s.KeyringTimeout = d.duration([]string{"keyring_timeout"}, f.KeyringTimeout, false)
	s.RefreshMargin = d.duration([]string{"refresh_margin"}, f.RefreshMargin, false)
	s.LoginWait = d.duration([]string{"login_wait"}, f.LoginWait, false)
	s.Remember = d.duration([]string{"remember"}, f.Remember, false)
	s.ApprovalTimeout = d.duration([]string{"approval_timeout"}, f.ApprovalTimeout, false)
	s.LockAfterIdle = d.duration([]string{"lock_after_idle"}, f.LockAfterIdle, true)
	s.PassphraseFile = d.file([]string{"passphrase_file"}, f.PassphraseFile)
	if d.has("ws_listen") {
		s.WSListen = d.listen([]string{"ws_listen"}, f.WSListen)
	}
	d.origins([]string{"ws_allowed_origins"}, f.WSAllowedOrigins)
	s.Approval = d.approval([]string{"approval"}, f.Approval)
	d.globs([]string{"allow"}, f.Allow)
	d.globs([]string{"deny"}, f.Deny)
	if f.Servers != nil {
		s.Servers = make(map[string]ServerSettings, len(f.Servers))
		for name, fs := range f.Servers {
			s.Servers[name] = d.server([]string{"servers", name}, fs)
		}
	}
	s.IdPs = d.idps(f.IdPs)
	for name, ss := range s.Servers {
		d.grant([]string{"servers", name}, ss, s.IdPs)
	}
	if f.Issuers != nil {
		s.Issuers = make(map[string]IssuerSettings, len(f.Issuers))
		for iss, is := range f.Issuers {
			if u, err := url.Parse(iss); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				d.at([]string{"issuers", iss}, false, "expected an issuer URL as the table name, got %q", iss)
			}
			s.Issuers[iss] = IssuerSettings(is)
		}
	}
	for i, fs := range f.RestrictedSocket {
		key := []string{"restricted_socket", "[" + strconv.Itoa(i) + "]"}
		rs := RestrictedSocketSettings{Path: d.file(sub(key, "path"), fs.Path), Servers: fs.Servers,
			TTL: d.duration(sub(key, "ttl"), fs.TTL, false)}
		for _, req := range []string{"path", "servers"} {
			if !d.has(sub(key, req)...) {
				d.at(key, false, "missing %s", req)
			}
		}
		if d.has(sub(key, "servers")...) && len(fs.Servers) == 0 {
			d.at(sub(key, "servers"), true, "expected at least one server")
		}
		s.RestrictedSockets = append(s.RestrictedSockets, rs)
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

var (
	serverNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (d *decoder) server(key []string, f server) ServerSettings {
	name := key[len(key)-1]
	if !serverNameRe.MatchString(name) {
		d.at(key, false, "invalid server name %q (use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)", name)
	}
	ss := ServerSettings{
		Name: name, URL: f.URL, Scopes: f.Scopes, Account: f.Account, ClientID: f.ClientID,
		ClientMetadataURL: f.ClientMetadataURL, RedirectPort: int(f.RedirectPort),
		AllowPrivateNetwork: f.AllowPrivateNetwork, ResourceAsAudience: f.ResourceAsAudience, DPoP: f.DPoP,
		Confirm: f.Confirm, Allow: f.Allow, Deny: f.Deny, Headers: f.Headers, Env: f.Env,
		ClientSecretFile: d.file(sub(key, "client_secret_file"), f.ClientSecretFile),
		Remember:         d.duration(sub(key, "remember"), f.Remember, false),
		Approval:         d.approval(sub(key, "approval"), f.Approval),
	}
	d.serverGrant(key, f, &ss)
	if !d.has(sub(key, "url")...) {
		d.at(key, false, "missing url")
	} else if pu, err := url.Parse(f.URL); err == nil && pu.User != nil {
		d.at(sub(key, "url"), true, "userinfo is not allowed in a server URL, got %q", RedactURL(f.URL))
	} else if err == nil && strings.Contains(f.URL, "#") {
		d.at(sub(key, "url"), true, "a fragment is not allowed in a server URL, got %q", f.URL)
	} else if _, err := CanonicalServerURL(f.URL); err != nil {
		d.at(sub(key, "url"), true, "expected an absolute http(s) URL, got %q", f.URL)
	}
	for i, sc := range f.Scopes {
		if !validScope(sc) {
			d.at(sub(key, "scopes", "["+strconv.Itoa(i)+"]"), true, "invalid scope %q (no spaces, quotes or backslashes)", sc)
		}
	}
	if d.has(sub(key, "client_metadata_url")...) && !validMetadataURL(f.ClientMetadataURL) {
		d.at(sub(key, "client_metadata_url"), true, "expected an https URL with a path (http only on loopback), got %q", RedactURL(f.ClientMetadataURL))
	}
	if f.RedirectPort < 0 || f.RedirectPort > 65535 {
		d.at(sub(key, "redirect_port"), true, "expected a port between 0 and 65535, got %d", f.RedirectPort)
		ss.RedirectPort = 0
	}
	if d.has(sub(key, "allow")...) && ss.Allow == nil {
		ss.Allow = []string{} // written, even empty: overrides the top level
	}
	d.globs(sub(key, "allow"), f.Allow)
	d.globs(sub(key, "deny"), f.Deny)
	for h, v := range f.Headers {
		if !validHeaderName(h) {
			d.at(sub(key, "headers", h), false, "invalid header name %q", h)
		}
		if _, ok := SecretRef(v); !ok {
			d.at(sub(key, "headers", h), true, `expected "secret:NAME" (store the value with `+"`mcpkey secret set NAME`"+`; header values are never written in the config)`)
		}
	}
	for name, v := range f.Env {
		if !envNameRe.MatchString(name) {
			d.at(sub(key, "env", name), false, "invalid environment variable name %q", name)
		}
		if _, ok := SecretRef(v); !ok && v != "token" {
			d.at(sub(key, "env", name), true, `expected "token" or "secret:NAME"`)
		}
	}
	return ss
}

// duration parses a Go duration string; zero is refused unless zeroOK,
// because a zero means "the default" in Settings. An absent key is 0.
func (d *decoder) duration(key []string, s string, zeroOK bool) time.Duration {
	if !d.has(key...) {
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
// relative to the config file's directory. An absent key is "".
func (d *decoder) file(key []string, p string) string {
	if !d.has(key...) {
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

func (d *decoder) listen(key []string, s string) string {
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

func (d *decoder) origins(key []string, list []string) {
	for i, o := range list {
		u, err := url.Parse(o)
		if o == "*" || o == "null" || err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			d.at(sub(key, "["+strconv.Itoa(i)+"]"), true, "expected an origin such as \"chrome-extension://ID\" (scheme://host, no wildcard), got %q", o)
		}
	}
}

// approval checks an approval key: one of ApprovalModes, or absent ("").
func (d *decoder) approval(key []string, v string) string {
	if d.has(key...) && !slices.Contains(ApprovalModes, v) {
		d.at(key, true, "expected one of %s, got %q", strings.Join(ApprovalModes, ", "), v)
		return ""
	}
	return v
}

func (d *decoder) globs(key []string, list []string) {
	for i, g := range list {
		if _, err := filepath.Match(g, ""); err != nil || g == "" {
			d.at(sub(key, "["+strconv.Itoa(i)+"]"), true, "invalid pattern %q", g)
		}
	}
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

// The schema, read by reflection: which Go type a key path decodes into,
// what that type is called in a message, and which TOML kinds fit it.

// schemaType is the type key decodes into, or nil if the schema has no
// such key. Array indexes ("[N]") step into slices; any name steps into a
// map.
func schemaType(key []string) reflect.Type {
	t := reflect.TypeFor[file]()
	for _, k := range key {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, k)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		case reflect.Slice:
			if !strings.HasPrefix(k, "[") {
				return nil
			}
			t = t.Elem()
		default:
			return nil
		}
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("toml") == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// tags lists a struct type's keys; nil for anything else.
func tags(t reflect.Type) []string {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("toml"))
	}
	return out
}

func fits(t reflect.Type, k unstable.Kind) bool {
	switch t.Kind() {
	case reflect.String:
		return k == unstable.String
	case reflect.Bool:
		return k == unstable.Bool
	case reflect.Int64:
		return k == unstable.Integer
	case reflect.Slice:
		return k == unstable.Array || k == unstable.ArrayTable && t.Elem().Kind() == reflect.Struct
	case reflect.Map, reflect.Struct:
		return k == unstable.Table || k == unstable.InlineTable
	}
	return false
}

func expected(t reflect.Type, key []string) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int64:
		return "an integer"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "[[" + key[len(key)-1] + "]] tables"
		}
		return "an array of strings"
	}
	return "a table"
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.Table, unstable.InlineTable:
		return "a table"
	case unstable.ArrayTable:
		return "an array of tables"
	}
	return "a date-time"
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

func sub(key []string, k ...string) []string { return append(slices.Clip(key), k...) }

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

// Reading errors also needs to know where each key and value is; strict
// decoding reports positions, but checks made after decoding (a URL, a
// duration) need them too. index reads them from go-toml's own parser.
