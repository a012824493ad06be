package userdirs

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestPlatformPaths(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	winEnv := env("AppData", `C:\Users\ann\AppData\Roaming`, "LocalAppData", `C:\Users\ann\AppData\Local\`)
	for _, tt := range []struct {
		name          string
		goos          string
		getenv        func(string) string
		home          string
		config, state string
	}{
		{"linux defaults", "linux", env(), "/home/ann",
			"/home/ann/.config/mcpkey/config.toml", "/home/ann/.local/state/mcpkey"},
		{"linux XDG", "linux", env("XDG_CONFIG_HOME", "/xdg/config", "XDG_STATE_HOME", "/xdg/state/"), "/home/ann",
			"/xdg/config/mcpkey/config.toml", "/xdg/state/mcpkey"},
		{"relative XDG ignored", "freebsd", env("XDG_CONFIG_HOME", "rel/config", "XDG_STATE_HOME", "rel"), "/home/ann",
			"/home/ann/.config/mcpkey/config.toml", "/home/ann/.local/state/mcpkey"},
		{"macOS ignores XDG", "darwin", env("XDG_CONFIG_HOME", "/xdg/config"), "/Users/ann",
			"/Users/ann/Library/Application Support/mcpkey/config.toml", "/Users/ann/Library/Logs/mcpkey"},
		{"windows", "windows", winEnv, `C:\Users\ann`,
			`C:\Users\ann\AppData\Roaming\mcpkey\config.toml`, `C:\Users\ann\AppData\Local\mcpkey\state`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				what string
				f    func(string, func(string) string, string) (string, error)
				want string
			}{{"config", configPathFor, tt.config}, {"state", stateDirFor, tt.state}} {
				got, err := c.f(tt.goos, tt.getenv, tt.home)
				if err != nil || got != c.want {
					t.Errorf("%s: got (%q, %v), want %q", c.what, got, err, c.want)
				}
			}
		})
	}

	for _, tt := range []struct {
		name, goos, want string
		getenv           func(string) string
	}{
		{"no home", "linux", "cannot find the home directory ($HOME is not set)", env()},
		{"no home on macOS", "darwin", "cannot find the home directory ($HOME is not set)", env()},
		{"no AppData", "windows", "cannot find the user's application data directory (%AppData% is not set)", env("LocalAppData", `C:\x`)},
	} {
		if _, err := configPathFor(tt.goos, tt.getenv, ""); err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := stateDirFor("windows", env("AppData", `C:\x`), `C:\home`); err == nil {
		t.Error("windows state dir without LocalAppData: no error")
	}
}

func TestDefaultPathsFromEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks the XDG variables")
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "c"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "s"))
	for _, c := range []struct {
		f    func() (string, error)
		want string
	}{
		{ConfigPath, filepath.Join(dir, "c", "mcpkey", "config.toml")},
		{StateDir, filepath.Join(dir, "s", "mcpkey")},
	} {
		if got, err := c.f(); err != nil || got != c.want {
			t.Errorf("got (%q, %v), want %q", got, err, c.want)
		}
	}
}
