package mcpremote

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Candidate is a server URL that may be the one behind an entry's hash.
type Candidate struct {
	URL  string
	From string // where it was found: "--url", a host's configuration file
}

// hostConfigs are the MCP hosts' configuration files that may run
// mcp-remote, relative to the home directory (and, for project files, to
// the working directory).
var hostConfigs = []string{
	".config/Claude/claude_desktop_config.json",
	"Library/Application Support/Claude/claude_desktop_config.json",
	"AppData/Roaming/Claude/claude_desktop_config.json",
	".claude.json",
	".cursor/mcp.json",
	".codeium/windsurf/mcp_config.json",
	".config/Code/User/mcp.json",
	"Library/Application Support/Code/User/mcp.json",
}

var projectConfigs = []string{".mcp.json", ".cursor/mcp.json", ".vscode/mcp.json"}

// HostCandidates returns the server URLs that MCP host configurations
// under home (and the project files in wd) pass to mcp-remote: in every
// JSON array of strings with an element naming mcp-remote, the http(s)
// URLs after it. Unreadable or non-JSON files are passed over.
func HostCandidates(home, wd string) []Candidate {
	var files []string
	for _, p := range hostConfigs {
		files = append(files, filepath.Join(home, filepath.FromSlash(p)))
	}
	if wd != "" {
		for _, p := range projectConfigs {
			files = append(files, filepath.Join(wd, filepath.FromSlash(p)))
		}
	}
	var out []Candidate
	for _, f := range files {
		for _, u := range urlsIn(f) {
			out = append(out, Candidate{URL: u, From: f})
		}
	}
	return out
}

func urlsIn(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var v any
	if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&v); err != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			seen := false
			for _, x := range v {
				s, ok := x.(string)
				switch {
				case !ok:
					walk(x)
				case strings.Contains(s, "mcp-remote"):
					seen = true
				case seen && (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")):
					out = append(out, s)
				}
			}
		}
	}
	walk(v)
	return out
}
