package launch_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/ipc/launch"
)

func TestServerKey(t *testing.T) {
	for in, want := range map[string]string{
		"github":                          "github",
		"https://mcp.example.com/mcp":     "mcp-example-com-mcp",
		"https://MCP.Example.com:8443/v1": "mcp-example-com-8443-v1",
		"http://127.0.0.1:7391/mcp?x=1":   "127-0-0-1-7391-mcp",
		"https://mcp.example.com/":        "mcp-example-com",
		"my server (work)":                "my-server-work",
		"https://例え.jp/mcp":               "jp-mcp",
		"***":                             "mcp",
	} {
		if got := launch.ServerKey(in); got != want {
			t.Errorf("ServerKey(%q) = %q, want %q", in, got, want)
		}
	}
	long := "https://mcp.example.com/" + strings.Repeat("segment/", 20) + "mcp"
	a, b := launch.ServerKey(long), launch.ServerKey(long+"2")
	if len(a) > 40 || a == b || !launch.ServerKeyPattern.MatchString(a) {
		t.Errorf("long URLs: %q and %q", a, b)
	}
}

// claudeCodeName is Claude Code's rule for `claude mcp add` names.
var claudeCodeName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// shellSplit splits a POSIX shell command line that uses only plain words
// and single quotes (what shellWord writes).
func shellSplit(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, started := false, false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\'':
			in, started = !in, true
		case r == ' ' && !in:
			if started {
				words = append(words, w.String())
				w.Reset()
				started = false
			}
		case r == '\\' && !in && i+1 < len(rs):
			i++ // an escaped character, as in '\''
			w.WriteRune(rs[i])
		default:
			if !in && strings.ContainsRune("\"$`;&|<>(){}*?~#", r) {
				t.Fatalf("unquoted shell metacharacter %q in %s", r, s)
			}
			w.WriteRune(r)
			started = true
		}
	}
	if in {
		t.Fatalf("unterminated quote in %s", s)
	}
	if started {
		words = append(words, w.String())
	}
	return words
}

// stdioEntry and httpEntry are what the hosts read for a server; unknown
// fields are refused.
type stdioEntry struct {
	Type    string            `json:"type,omitempty"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
}

type httpEntry struct {
	Type    string            `json:"type,omitempty"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

func decodeStrict(t *testing.T, text string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v in:\n%s", err, text)
	}
}

// checkSnippet validates s as its host would, and returns the server's
// name, its launch argv (bridge) or URL (proxy), and its environment.
func checkSnippet(t *testing.T, s launch.HostSnippet) (name string, argv []string, env map[string]string) {
	t.Helper()
	one := func(m map[string]json.RawMessage) (string, json.RawMessage) {
		if len(m) != 1 {
			t.Fatalf("want one server, have %d", len(m))
		}
		for k, v := range m {
			return k, v
		}
		return "", nil
	}
	entry := func(raw json.RawMessage) ([]string, map[string]string) {
		if s.Via == "proxy" {
			var e httpEntry
			decodeStrict(t, string(raw), &e)
			if e.URL == "" || !strings.HasPrefix(e.Headers["Authorization"], "Bearer ${") {
				t.Fatalf("proxy entry %+v", e)
			}
			return []string{e.URL}, nil
		}
		var e stdioEntry
		decodeStrict(t, string(raw), &e)
		if !strings.HasPrefix(e.Command, "/") || len(e.Args) == 0 {
			t.Fatalf("stdio entry %+v", e)
		}
		return append([]string{e.Command}, e.Args...), e.Env
	}
	switch s.Host {
	case "claude-desktop", "cursor", "vscode":
		var f struct {
			MCPServers map[string]json.RawMessage `json:"mcpServers"` // Claude Desktop, Cursor
			Servers    map[string]json.RawMessage `json:"servers"`    // VS Code
			Inputs     []map[string]any           `json:"inputs,omitempty"`
		}
		decodeStrict(t, s.Text, &f)
		servers, foreign := f.MCPServers, f.Servers != nil || f.Inputs != nil
		if s.Host == "vscode" {
			servers, foreign = f.Servers, f.MCPServers != nil
		}
		if foreign {
			t.Fatalf("%s reads no such key:\n%s", s.Host, s.Text)
		}
		var raw json.RawMessage
		name, raw = one(servers)
		argv, env = entry(raw)
	case "claude-code":
		w := shellSplit(t, s.Text)
		if len(w) < 4 || w[0] != "claude" || w[1] != "mcp" {
			t.Fatalf("not a claude mcp command: %q", w)
		}
		switch w[2] {
		case "add-json":
			if len(w) != 5 {
				t.Fatalf("add-json takes a name and JSON: %q", w)
			}
			name = w[3]
			argv, _ = entry(json.RawMessage(w[4]))
		case "add":
			name, w = w[3], w[4:]
			env = map[string]string{}
			for len(w) >= 2 && w[0] == "-e" {
				k, v, ok := strings.Cut(w[1], "=")
				if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
					t.Fatalf("-e %q is not KEY=value", w[1])
				}
				env[k], w = v, w[2:]
			}
			if len(w) < 2 || w[0] != "--" {
				t.Fatalf("want -- COMMAND after the options: %q", w)
			}
			argv = w[1:]
		default:
			t.Fatalf("unknown claude mcp subcommand %q", w[2])
		}
	}
	if !claudeCodeName.MatchString(name) {
		t.Fatalf("%s: server name %q is refused by hosts (letters, digits, - and _ only)", s.Host, name)
	}
	return name, argv, env
}

// TestSnippetHostsAccept: every snippet, for a URL and for a configured
// name, with and without a socket to pass on, parses as its host parses it,
// names the server validly and launches `mcpkey bridge <server>` with
// MCPKEY_SOCK exactly when asked.
func TestSnippetHostsAccept(t *testing.T) {
	const exe = "/opt/mcp key/bin/mcpkey"
	const sock = "/home/ann/.run/it's/agent.sock"
	for _, server := range []string{"https://mcp.example.com/mcp", "github"} {
		for _, host := range launch.Hosts() {
			for _, socket := range []string{"", sock} {
				s, err := launch.Snippet(host, server, launch.SnippetOptions{Exe: exe, Socket: socket})
				if err != nil {
					t.Fatal(err)
				}
				name, argv, env := checkSnippet(t, s)
				if name != launch.ServerKey(server) || s.Name != name {
					t.Errorf("%s %s: name %q (snippet says %q)", host, server, name, s.Name)
				}
				if strings.Join(argv, "\x00") != strings.Join([]string{exe, "bridge", server}, "\x00") {
					t.Errorf("%s %s: argv %q", host, server, argv)
				}
				if env["MCPKEY_SOCK"] != socket || len(env) > 1 {
					t.Errorf("%s %s socket %q: env %v", host, server, socket, env)
				}
			}
			if host == "claude-desktop" {
				continue
			}
			if server == "github" {
				s, err := launch.Snippet(host, server, launch.SnippetOptions{Exe: exe, ProxyURL: "http://127.0.0.1:7391"})
				if err != nil {
					t.Fatal(err)
				}
				if _, argv, _ := checkSnippet(t, s); argv[0] != "http://127.0.0.1:7391/github/mcp" {
					t.Errorf("%s proxy URL %q", host, argv[0])
				}
			} else if _, err := launch.Snippet(host, server, launch.SnippetOptions{Exe: exe, ProxyURL: "http://127.0.0.1:7391"}); err == nil ||
				!strings.Contains(err.Error(), "[servers.mcp-example-com-mcp]") {
				t.Errorf("%s proxy for a URL: %v, want a hint to configure it", host, err)
			}
		}
	}
	s, err := launch.Snippet("claude-code", "https://mcp.example.com/mcp", launch.SnippetOptions{Exe: exe, Name: "example"})
	if err != nil || s.Name != "example" {
		t.Fatalf("--name: %+v %v", s, err)
	}
	if _, err := launch.Snippet("claude-code", "github", launch.SnippetOptions{Exe: exe, Name: "a b"}); err == nil ||
		!strings.Contains(err.Error(), `"a b"`) {
		t.Errorf("an invalid --name: %v", err)
	}
}
