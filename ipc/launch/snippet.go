package launch

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Hosts returns the host names Snippet accepts, in help order.
func Hosts() []string { return []string{"claude-desktop", "claude-code", "cursor", "vscode"} }

// SnippetOptions configures Snippet.
type SnippetOptions struct {
	// Exe is the absolute path of the mcpkey binary the host launches.
	Exe string
	// ProxyURL, when set, is the mcpkey proxy's base URL
	// (http://127.0.0.1:PORT): hosts that speak Streamable HTTP get the
	// proxy's endpoint instead of the bridge, with the proxy secret taken
	// from the environment variable MCPKEY_PROXY_SECRET or a prompt, never
	// written in the file.
	ProxyURL string
	// Name is the key the host lists the server under; "" derives it from
	// the server (ServerKey). It must match ServerKeyPattern.
	Name string
	// Socket, when set, is put in the launched bridge's environment as
	// MCPKEY_SOCK: hosts launch stdio servers with a stripped environment
	// (no XDG_RUNTIME_DIR, no MCPKEY_SOCK), so the bridge would not find an
	// agent whose socket is elsewhere (ipc.HostSocketEnv).
	Socket string
}

// ServerKeyPattern is what hosts accept as a server's name: Claude Code
// refuses anything else ("Names can only contain letters, numbers, hyphens,
// and underscores").
var ServerKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// maxServerKey bounds a derived name: hosts prefix tool names with it, and
// some cap the total (Cursor at 60 characters).
const maxServerKey = 40

// ServerKey derives a host's name for server (a configured name or a URL):
// for a URL its host and path, every run of other characters than letters,
// digits, '-' and '_' made one '-' ("https://mcp.example.com/mcp" gives
// "mcp-example-com-mcp"); a long one is cut and ends in a hash of the whole.
func ServerKey(server string) string {
	s := server
	if u, err := url.Parse(server); err == nil && u.Scheme != "" && u.Host != "" {
		s = strings.ToLower(u.Host) + u.EscapedPath()
	}
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r < 128 && (r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	key := strings.Trim(b.String(), "-")
	key = cmp.Or(key, "mcp")
	if len(key) > maxServerKey {
		sum := sha256.Sum256([]byte(server))
		key = strings.TrimRight(key[:maxServerKey-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return key
}

// HostSnippet is a configuration block for one host.
type HostSnippet struct {
	Host string `json:"host"`
	// Name is the key the server is listed under.
	Name string `json:"name"`
	// Via is "bridge" (the host launches mcpkey bridge over stdio) or
	// "proxy" (the host talks HTTP to mcpkey proxy).
	Via string `json:"via"`
	// Where says where the block goes.
	Where string `json:"where"`
	// Text is the exact block: JSON to merge into the host's file, or the
	// command to run (Claude Code).
	Text string `json:"text"`
}

// Snippet returns the configuration block that makes host use server (a
// configured name or a URL) through mcpkey.
func Snippet(host, server string, opts SnippetOptions) (HostSnippet, error) {
	if !slices.Contains(Hosts(), host) {
		return HostSnippet{}, fmt.Errorf("unknown host %q: one of %s", host, strings.Join(Hosts(), ", "))
	}
	if server == "" {
		return HostSnippet{}, fmt.Errorf("no server name")
	}
	if opts.Exe == "" {
		return HostSnippet{}, fmt.Errorf("no mcpkey path")
	}
	name := opts.Name
	if name == "" {
		name = ServerKey(server)
	}
	if !ServerKeyPattern.MatchString(name) {
		return HostSnippet{}, fmt.Errorf("name %q: hosts accept only letters, digits, '-' and '_'", name)
	}
	proxy := opts.ProxyURL != ""
	if proxy && strings.Contains(server, "://") {
		return HostSnippet{}, fmt.Errorf("the proxy serves configured servers by name (/NAME/mcp), not %s: add [servers.%s] with url = %q to the config and use that name", server, name, server)
	}
	stdio := map[string]any{"command": opts.Exe, "args": []string{"bridge", server}}
	if opts.Socket != "" {
		stdio["env"] = map[string]string{"MCPKEY_SOCK": opts.Socket}
	}
	endpoint := strings.TrimSuffix(opts.ProxyURL, "/") + "/" + server + "/mcp"
	s := HostSnippet{Host: host, Name: name, Via: "bridge"}
	switch host {
	case "claude-desktop":
		// Claude Desktop's config launches only stdio servers.
		s.Where = "claude_desktop_config.json (macOS: ~/Library/Application Support/Claude/, Windows: %APPDATA%\\Claude\\); merge into mcpServers"
		s.Text = indentJSON(map[string]any{"mcpServers": map[string]any{name: stdio}})
	case "claude-code":
		if proxy {
			s.Via = "proxy"
			s.Where = "run in a shell; Claude Code expands ${MCPKEY_PROXY_SECRET} from its environment"
			cfg := map[string]any{"type": "http", "url": endpoint,
				"headers": map[string]string{"Authorization": "Bearer ${MCPKEY_PROXY_SECRET}"}}
			s.Text = "claude mcp add-json " + shellWord(name) + " " + shellWord(compactJSON(cfg))
		} else {
			s.Where = "run in a shell (add --scope user to use it in every project)"
			env := ""
			if opts.Socket != "" {
				// After the name: -e takes several values, up to "--".
				env = " -e " + shellWord("MCPKEY_SOCK="+opts.Socket)
			}
			s.Text = "claude mcp add " + shellWord(name) + env + " -- " + shellWord(opts.Exe) + " bridge " + shellWord(server)
		}
	case "cursor":
		s.Where = "~/.cursor/mcp.json (or .cursor/mcp.json in a project); merge into mcpServers"
		if proxy {
			s.Via = "proxy"
			s.Text = indentJSON(map[string]any{"mcpServers": map[string]any{name: map[string]any{
				"url": endpoint, "headers": map[string]string{"Authorization": "Bearer ${env:MCPKEY_PROXY_SECRET}"}}}})
		} else {
			s.Text = indentJSON(map[string]any{"mcpServers": map[string]any{name: stdio}})
		}
	case "vscode":
		s.Where = ".vscode/mcp.json (or the user mcp.json: MCP: Open User Configuration); merge into servers"
		if proxy {
			s.Via = "proxy"
			s.Text = indentJSON(map[string]any{
				"inputs": []any{map[string]any{"type": "promptString", "id": "mcpkey-proxy-secret",
					"description": "mcpkey proxy secret (printed by mcpkey proxy)", "password": true}},
				"servers": map[string]any{name: map[string]any{"type": "http", "url": endpoint,
					"headers": map[string]string{"Authorization": "Bearer ${input:mcpkey-proxy-secret}"}}}})
		} else {
			vs := maps.Clone(stdio)
			vs["type"] = "stdio"
			s.Text = indentJSON(map[string]any{"servers": map[string]any{name: vs}})
		}
	}
	return s, nil
}

func indentJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return b.String()
}

func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSpace(b.String())
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == ':' || r == '.' || r == '-' || r == '_' || r == '@' || r == '=' || r == '+' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
