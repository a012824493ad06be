package launch

import (
	"bytes"
	"encoding/json"
	"fmt"
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
}

// HostSnippet is a configuration block for one host.
type HostSnippet struct {
	Host string `json:"host"`
	// Via is "bridge" (the host launches mcpkey bridge over stdio) or
	// "proxy" (the host talks HTTP to mcpkey proxy).
	Via string `json:"via"`
	// Where says where the block goes.
	Where string `json:"where"`
	// Text is the exact block: JSON to merge into the host's file, or the
	// command to run (Claude Code).
	Text string `json:"text"`
}

// Snippet returns the configuration block that makes host use the server
// name through mcpkey.
func Snippet(host, name string, opts SnippetOptions) (HostSnippet, error) {
	if !slices.Contains(Hosts(), host) {
		return HostSnippet{}, fmt.Errorf("unknown host %q: one of %s", host, strings.Join(Hosts(), ", "))
	}
	if name == "" {
		return HostSnippet{}, fmt.Errorf("no server name")
	}
	if opts.Exe == "" {
		return HostSnippet{}, fmt.Errorf("no mcpkey path")
	}
	stdio := map[string]any{"command": opts.Exe, "args": []string{"bridge", name}}
	endpoint := strings.TrimSuffix(opts.ProxyURL, "/") + "/" + name + "/mcp"
	proxy := opts.ProxyURL != ""
	s := HostSnippet{Host: host, Via: "bridge"}
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
			s.Text = "claude mcp add " + shellWord(name) + " -- " + shellWord(opts.Exe) + " bridge " + shellWord(name)
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
			s.Text = indentJSON(map[string]any{"servers": map[string]any{name: map[string]any{
				"type": "stdio", "command": opts.Exe, "args": []string{"bridge", name}}}})
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
