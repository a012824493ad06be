// Package mcpremote reads the plaintext token store of mcp-remote (the npm
// stdio-to-HTTP MCP proxy) and runs `mcpkey import mcp-remote`, which hands
// each session it finds to the agent (session.import) and offers to delete
// the files.
//
// The layout, as mcp-remote 0.15.1 writes it (src/lib/mcp-auth-config.ts):
// one directory per store version, $MCP_REMOTE_CONFIG_DIR (default
// ~/.mcp-auth) /mcp-remote-v1 (versions before 0.15 used
// mcp-remote-<version>), holding files named <hash>_<name>, where <hash> is
// the hex MD5 of the server URL exactly as given on mcp-remote's command
// line (joined with "|" to --resource, --auth-params, --header, … when
// those were given):
//
//	<hash>_tokens.json        the OAuth token response, plus expires_at (ms
//	                          since the epoch) and requested_scope
//	<hash>_client_info.json   the dynamic client registration (RFC 7591),
//	                          plus the issuer it was registered with
//	<hash>_code_verifier_*, <hash>_discovery_state_*   a sign-in in flight
//	<hash>_refresh_in_progress.json   a refresh lease {pid, nonce, at}
//	<hash>_lock.json          older versions' callback-server lock
//	<hash>_debug.log          with --debug: "Starting mcp-remote with server
//	                          URL: <url>"
//
// No file names the server URL itself: it comes from --url, the debug log,
// or an MCP host's configuration that runs mcp-remote (see Candidates),
// and is accepted only when its MD5 is the files' hash.
//
// The package links only the wire types (ipc, api): it runs in the CLI.
package mcpremote

import (
	"bufio"
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BaseDir is mcp-remote's configuration directory: $MCP_REMOTE_CONFIG_DIR,
// else ~/.mcp-auth (as mcp-remote's getConfigDir).
func BaseDir(getenv func(string) string, home string) string {
	if d := getenv("MCP_REMOTE_CONFIG_DIR"); d != "" {
		return d
	}
	return filepath.Join(home, ".mcp-auth")
}

// Hash is mcp-remote's name for a server URL given alone (getServerUrlHash).
func Hash(serverURL string) string {
	sum := md5.Sum([]byte(serverURL))
	return hex.EncodeToString(sum[:])
}

// Tokens is <hash>_tokens.json.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	// ExpiresAt is the access token's expiry (zero: unknown).
	ExpiresAt time.Time
	Scopes    []string
}

// Client is <hash>_client_info.json: the client the tokens were issued to.
type Client struct {
	ClientID                string
	ClientSecret            string
	TokenEndpointAuthMethod string
	Issuer                  string
}

// Entry is one session in the store: the files of one hash in one version
// directory.
type Entry struct {
	Dir   string // the version directory (…/mcp-remote-v1)
	Hash  string
	Files []string // every file of this hash in Dir, sorted
	// Modified is when the tokens file was last written (zero without one).
	Modified time.Time
	Tokens   *Tokens // nil: no tokens file, or Problem
	Client   *Client // nil: no client file, or Problem
	// URL is the server URL whose hash this is ("" when unknown), and
	// URLFrom where it was found.
	URL, URLFrom string
	// Problem says why the entry cannot be imported ("" when it can).
	Problem string
}

// filePattern matches mcp-remote's file names: <md5 hex>_<name>.
var filePattern = regexp.MustCompile(`^([0-9a-f]{32})_(.+)$`)

// maxFile bounds what is read of one file: a token response is a few KiB.
const maxFile = 1 << 20

// Scan reads every version directory under base (mcp-remote-*) and returns
// its sessions, newest tokens first. Candidate URLs (see Candidates) name
// the entries whose hash they match; the debug log next to an entry is
// consulted too. A missing base is no error (no entries). Scan never writes.
func Scan(base string, candidates []Candidate) ([]Entry, error) {
	dirs, err := filepath.Glob(filepath.Join(base, "mcp-remote-*"))
	if err != nil {
		return nil, fmt.Errorf("read mcp-remote's store %s: %w", base, err)
	}
	if _, err := os.Stat(base); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read mcp-remote's store: %w", err)
	}
	byHash := map[string]Candidate{}
	for _, c := range candidates {
		if _, ok := byHash[Hash(c.URL)]; !ok {
			byHash[Hash(c.URL)] = c
		}
	}
	var out []Entry
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read mcp-remote's store: %w", err)
		}
		groups := map[string][]string{}
		var order []string
		for _, de := range des {
			m := filePattern.FindStringSubmatch(de.Name())
			if m == nil || !de.Type().IsRegular() {
				continue
			}
			if groups[m[1]] == nil {
				order = append(order, m[1])
			}
			groups[m[1]] = append(groups[m[1]], filepath.Join(dir, de.Name()))
		}
		for _, h := range order {
			e := Entry{Dir: dir, Hash: h, Files: groups[h]}
			slices.Sort(e.Files)
			e.read()
			if c, ok := byHash[h]; ok {
				e.URL, e.URLFrom = c.URL, c.From
			} else if u := urlFromDebugLog(e.path("debug.log"), h); u != "" {
				e.URL, e.URLFrom = u, "mcp-remote's debug log"
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return b.Modified.Compare(a.Modified) })
	return out, nil
}

func (e *Entry) path(name string) string { return filepath.Join(e.Dir, e.Hash+"_"+name) }

func (e *Entry) has(name string) bool { return slices.Contains(e.Files, e.path(name)) }

// read fills Tokens, Client, Modified and Problem from the entry's files.
func (e *Entry) read() {
	if !e.has("tokens.json") {
		e.Problem = "no tokens (a sign-in that never finished)"
		return
	}
	if fi, err := os.Stat(e.path("tokens.json")); err == nil {
		e.Modified = fi.ModTime()
	}
	if e.refreshing(time.Now()) {
		e.Problem = "mcp-remote is refreshing it right now (a refresh lease younger than 30 s): run the import again in a minute"
		return
	}
	t, err := readTokens(e.path("tokens.json"), e.Modified)
	if err != nil {
		e.Problem = err.Error()
		return
	}
	e.Tokens = t
	if t.RefreshToken == "" {
		e.Problem = "no refresh token (the authorization server issued none): sign in with mcpkey login instead"
		return
	}
	if !e.has("client_info.json") {
		e.Problem = "no client registration (mcp-remote ran with a static client: sign in with mcpkey login --client-id instead)"
		return
	}
	c, err := readClient(e.path("client_info.json"))
	if err != nil {
		e.Problem = err.Error()
		return
	}
	e.Client = c
}

// leaseTTL is how long mcp-remote holds its refresh lease
// (REFRESH_LEASE_MS): a younger lease is a refresh in flight, whose
// rotated refresh token is not in the tokens file yet.
const leaseTTL = 30 * time.Second

// refreshing reports whether mcp-remote holds a live refresh lease on e.
func (e *Entry) refreshing(now time.Time) bool {
	if !e.has("refresh_in_progress.json") {
		return false
	}
	var lease struct {
		At json.RawMessage `json:"at"`
	}
	if readJSON(e.path("refresh_in_progress.json"), &lease) != nil {
		return false // mcp-remote itself treats an unreadable lease as none
	}
	ms, ok := number(lease.At)
	return ok && now.Sub(time.UnixMilli(int64(ms))) < leaseTTL
}

// readJSON decodes the file at path into v. Its errors name the file and
// never quote its content (a token could be in it).
func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(b) > maxFile {
		return fmt.Errorf("%s is larger than %d bytes: not mcp-remote's", filepath.Base(path), maxFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%s is not valid JSON (at byte %d)", filepath.Base(path), se.Offset)
		case errors.As(err, &te) && te.Field == "":
			return fmt.Errorf("%s does not hold a JSON object", filepath.Base(path))
		case errors.As(err, &te):
			return fmt.Errorf("%s: %s is a JSON %s, not a %s", filepath.Base(path), te.Field, te.Value, te.Type)
		}
		return fmt.Errorf("%s is not valid JSON", filepath.Base(path))
	}
	return nil
}

// readTokens reads <hash>_tokens.json; modified is the file's mtime, the
// best guess of when the token was issued when only expires_in is known.
func readTokens(path string, modified time.Time) (*Tokens, error) {
	var raw struct {
		AccessToken    string          `json:"access_token"`
		TokenType      string          `json:"token_type"`
		RefreshToken   string          `json:"refresh_token"`
		ExpiresIn      json.RawMessage `json:"expires_in"`
		ExpiresAt      json.RawMessage `json:"expires_at"`
		Scope          string          `json:"scope"`
		RequestedScope string          `json:"requested_scope"`
	}
	if err := readJSON(path, &raw); err != nil {
		return nil, err
	}
	if raw.AccessToken == "" && raw.RefreshToken == "" {
		return nil, fmt.Errorf("%s holds no token", filepath.Base(path))
	}
	t := &Tokens{AccessToken: raw.AccessToken, RefreshToken: raw.RefreshToken, TokenType: raw.TokenType}
	scope := cmp.Or(raw.Scope, raw.RequestedScope)
	t.Scopes = strings.Fields(scope)
	// expires_at is written as a number but read back coerced
	// (z.coerce.number()): accept a numeric string too.
	if ms, ok := number(raw.ExpiresAt); ok && ms > 0 {
		t.ExpiresAt = time.UnixMilli(int64(ms))
	} else if s, ok := number(raw.ExpiresIn); ok && s > 0 && !modified.IsZero() {
		t.ExpiresAt = modified.Add(time.Duration(s) * time.Second)
	}
	return t, nil
}

// number reads a JSON number or numeric string.
func number(raw json.RawMessage) (float64, bool) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// readClient reads <hash>_client_info.json.
func readClient(path string) (*Client, error) {
	var raw struct {
		ClientID                string `json:"client_id"`
		ClientSecret            string `json:"client_secret"`
		TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
		Issuer                  string `json:"issuer"`
		ClientSecretExpiresAt   int64  `json:"client_secret_expires_at"`
	}
	if err := readJSON(path, &raw); err != nil {
		return nil, err
	}
	if raw.ClientID == "" {
		return nil, fmt.Errorf("%s has no client_id", filepath.Base(path))
	}
	if raw.ClientSecretExpiresAt > 0 && time.Unix(raw.ClientSecretExpiresAt, 0).Before(time.Now()) {
		return nil, fmt.Errorf("the client secret in %s expired on %s", filepath.Base(path), time.Unix(raw.ClientSecretExpiresAt, 0).Format(time.DateOnly))
	}
	return &Client{ClientID: raw.ClientID, ClientSecret: raw.ClientSecret,
		TokenEndpointAuthMethod: raw.TokenEndpointAuthMethod, Issuer: raw.Issuer}, nil
}

// debugLine is what mcp-remote --debug logs at start (parseCommandLineArgs).
const debugLine = "Starting mcp-remote with server URL: "

// urlFromDebugLog returns the server URL a debug log names whose hash is
// hash, or "".
func urlFromDebugLog(path, hash string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, debugLine)
		if i < 0 {
			continue
		}
		u := strings.TrimSpace(line[i+len(debugLine):])
		if Hash(u) == hash {
			return u
		}
	}
	return ""
}

// Delete removes every file of e (tokens, client registration, flows in
// flight, locks, debug log). It goes on past a failure and returns the
// first.
func (e *Entry) Delete() error {
	var first error
	for _, f := range e.Files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("delete %s: %w", f, err)
		}
	}
	return first
}
