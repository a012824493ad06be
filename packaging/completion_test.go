package packaging

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCommands is shaped like main's table, with the awkward cases: an
// alias, a repeatable flag, choices, a usage with quotes, brackets and colons.
var testCommands = []Command{
	{Name: "agent", Args: "[flags]", Short: "run the agent in the foreground",
		Long: "Runs the agent.\nSecond line of the paragraph.\n\n.dot at the start, and a \\backslash\n\nexamples:\n  mcpkey agent --socket /tmp/x.sock\n  mcpkey agent --backend file\n",
		Flags: []Flag{
			{Name: "socket", Value: "path", Usage: "socket path (default $MCPKEY_SOCK)"},
			{Name: "backend", Value: "string", Usage: "credential store: auto, file [or] memory", Default: "auto"},
			{Name: "tray", Usage: "also show the tray"},
		}},
	{Name: "login", Args: "<server> [flags]", Short: "sign in to an MCP server (OAuth, in your browser)", Flags: []Flag{
		{Name: "scope", Value: "string", Usage: "a scope to request", Repeatable: true},
		{Name: "client-secret-file", Value: "path", Usage: "the client's secret, in a file"},
	}},
	{Name: "logout", Args: "<server>", Short: "remove a session's 'tokens'"},
	{Name: "list", Aliases: "ls", Args: "[--json]", Short: "list sessions", Flags: []Flag{{Name: "json", Usage: "print JSON"}}},
	{Name: "status", Short: "show the agent's state"},
	{Name: "completion", Args: "bash|zsh|fish", Short: "print shell completions"},
}

func TestCompletionCoversEverything(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		s, err := Completion(sh, testCommands)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range testCommands {
			for _, n := range names(c) {
				if !strings.Contains(s, n) {
					t.Errorf("%s completion lacks command %q", sh, n)
				}
			}
			for _, f := range c.Flags {
				want := "--" + f.Name
				if sh == "fish" {
					want = "-l '" + f.Name + "'"
				}
				if !strings.Contains(s, want) {
					t.Errorf("%s completion lacks %s's flag %q", sh, c.Name, want)
				}
			}
		}
	}
	if _, err := Completion("tcsh", testCommands); err == nil || !strings.Contains(err.Error(), `no completion for shell "tcsh"`) {
		t.Errorf("tcsh: err = %v", err)
	}
}

// TestBashCompletion runs the script in a real bash and asks it what it
// completes.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, _ := Completion("bash", testCommands)
	p := filepath.Join(t.TempDir(), "mcpkey.bash")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // words; the last one is being completed
		want []string
	}{
		{"mcpkey lo", []string{"login", "logout"}},
		{"mcpkey l", []string{"login", "logout", "list", "ls"}},
		{"mcpkey h", []string{"help"}},
		{"mcpkey help st", []string{"status"}},
		{"mcpkey login --", []string{"--scope", "--client-secret-file"}},
		{"mcpkey login github --sc", []string{"--scope"}},
		{"mcpkey ls --", []string{"--json"}},
		{"mcpkey agent --t", []string{"--tray"}},
		{"mcpkey completion ", []string{"bash", "zsh", "fish"}},
		{"mcpkey completion z", []string{"zsh"}},
		{"mcpkey status --", nil},
	} {
		words := strings.Split(tc.line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, shSingle(w))
		}
		prog := "source " + shSingle(p) + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_mcpkey\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		got := strings.Fields(string(out))
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestShellSyntax parses each script with its own shell, where installed.
func TestShellSyntax(t *testing.T) {
	for _, tc := range []struct{ shell string }{{"bash"}, {"zsh"}, {"fish"}} {
		t.Run(tc.shell, func(t *testing.T) {
			sh, err := exec.LookPath(tc.shell)
			if err != nil {
				t.Skipf("%s not installed", tc.shell)
			}
			script, _ := Completion(tc.shell, testCommands)
			p := filepath.Join(t.TempDir(), "mcpkey."+tc.shell)
			if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", tc.shell, err, out)
			}
			// The check can fail: a broken script is rejected.
			broken := p + ".broken"
			if err := os.WriteFile(broken, []byte(script+"\nif true; then\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh, "-n", broken).CombinedOutput(); err == nil {
				t.Errorf("%s -n accepted a broken script\n%s", tc.shell, out)
			}
		})
	}
}

// TestFishCompletion asks a real fish what it completes.
func TestFishCompletion(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish not installed")
	}
	script, _ := Completion("fish", testCommands)
	p := filepath.Join(t.TempDir(), "mcpkey.fish")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"mcpkey lo", []string{"login", "logout"}},
		{"mcpkey login --", []string{"--client-secret-file", "--scope"}},
		{"mcpkey ls --", []string{"--json"}},
		{"mcpkey completion ", []string{"bash", "fish", "zsh"}},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source "+fishQuote(p)+"; complete -C "+fishQuote(tc.line))
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		if !reflect.DeepEqual(sorted(got), sorted(tc.want)) {
			t.Errorf("complete %q = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestManPage(t *testing.T) {
	m := ManPage(testCommands, "v1.2.3")
	if !strings.HasPrefix(m, ".TH MCPKEY 1 \"\" \"mcpkey v1.2.3\" \"User Commands\"\n") {
		t.Errorf("header: %q", strings.SplitN(m, "\n", 2)[0])
	}
	for _, c := range testCommands {
		if !strings.Contains(m, ".SS \"mcpkey "+roffText(strings.TrimSpace(c.Name+" "+c.Args))+"\"\n") {
			t.Errorf("man page lacks a section for %s", c.Name)
		}
		for _, f := range c.Flags {
			if !strings.Contains(m, ".TP\n\\fB\\-\\-"+roffText(f.Name)+"\\fR") {
				t.Errorf("man page lacks %s --%s", c.Name, f.Name)
			}
		}
	}
	for _, want := range []string{"Alias: ls.", "\\&.dot at the start", "\\ebackslash", "(default: auto)", "; may be repeated",
		".nf\nmcpkey agent \\-\\-socket /tmp/x.sock\nmcpkey agent \\-\\-backend file\n.fi\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for i, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, "'") {
			t.Errorf("line %d starts with a quote (a roff control line): %q", i+1, l)
		}
	}
}

// TestManPageRenders formats the page with groff, as man does, and checks
// the text a reader sees, warnings included.
func TestManPageRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=200n")
	cmd.Stdin = strings.NewReader(ManPage(testCommands, "v1.2.3"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("groff warnings:\n%s", stderr.String())
	}
	text := stripOverstrike(string(out))
	for _, want := range []string{"mcpkey agent [flags]", "--socket path", "socket path (default $MCPKEY_SOCK)",
		"mcpkey login <server> [flags]", "--client-secret-file path", ".dot at the start, and a \\backslash",
		"mcpkey completion bash|zsh|fish", "remove a session's 'tokens'", "mcpkey v1.2.3"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, text)
		}
	}
}

// stripOverstrike removes grotty's bold and underline (x\bx, _\bx) and
// maps the Unicode hyphen groff uses for \- back to '-'.
func stripOverstrike(s string) string {
	var b []rune
	for _, r := range s {
		if r == '\b' && len(b) > 0 {
			b = b[:len(b)-1]
			continue
		}
		b = append(b, r)
	}
	return strings.NewReplacer("\u2010", "-", "\u2212", "-", "\u2019", "'", "\u2018", "'").Replace(string(b))
}

func TestFlagsOf(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("config", "", "`file` to read")
	fs.Bool("json", false, "print JSON")
	fs.Duration("min-ttl", 0, "least lifetime")
	fs.String("backend", "auto", "store")
	got := FlagsOf(fs)
	want := []Flag{
		{Name: "backend", Usage: "store", Default: "auto", Value: "string"},
		{Name: "config", Usage: "file to read", Value: "file"},
		{Name: "json", Usage: "print JSON"},
		{Name: "min-ttl", Usage: "least lifetime", Value: "duration"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FlagsOf:\n got %+v\nwant %+v", got, want)
	}
}
