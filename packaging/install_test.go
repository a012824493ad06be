package packaging

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func uid(n int) *int { return &n }

// recorder is a Run func that records command lines and fails the ones
// listed in fail.
type recorder struct {
	calls []string
	fail  map[string]error
}

func (r *recorder) run(name string, args ...string) error {
	line := strings.Join(append([]string{name}, args...), " ")
	r.calls = append(r.calls, line)
	return r.fail[line]
}

func (r *recorder) take() []string {
	c := r.calls
	r.calls = nil
	return c
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./packaging -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update after checking):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

func TestInstallDryRunGolden(t *testing.T) {
	for _, tc := range []struct{ goos, exe string }{
		{"linux", "/opt/mcpkey/bin/mcpkey"},
		{"darwin", "/opt/homebrew/bin/mcpkey"},
		{"windows", `C:\Users\u\AppData\Local\Programs\mcpkey\mcpkey.exe`},
	} {
		for _, op := range []string{"install", "uninstall"} {
			t.Run(tc.goos+"/"+op, func(t *testing.T) {
				var out strings.Builder
				rec := &recorder{}
				home := filepath.Join(t.TempDir(), "home", "u") // nothing installed yet
				opts := InstallOptions{
					GOOS: tc.goos, Exe: tc.exe, Home: home, ConfigHome: home + "/.config",
					Tray: true, DryRun: true, Run: rec.run, Out: &out, UID: uid(501),
				}
				if op == "uninstall" {
					// Pretend everything is installed, so there is something to remove.
					if _, err := Install(InstallOptions{GOOS: tc.goos, Exe: tc.exe, Home: home, ConfigHome: home + "/.config",
						Tray: true, Run: rec.run, UID: uid(501), RunKey: fakeRunKeyIf(tc.goos)}); err != nil {
						t.Fatal(err)
					}
					rec.take()
				}
				var plan Plan
				var err error
				if op == "install" {
					plan, err = Install(opts)
				} else {
					plan, err = Uninstall(opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(rec.calls) != 0 {
					t.Errorf("a dry run ran %q", rec.calls)
				}
				if tc.goos != "windows" && op == "install" {
					if _, err := os.Stat(home); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("a dry run created %s (stat: %v)", home, err)
					}
				}
				if !plan.Changed() && tc.goos != "windows" {
					t.Error("Plan.Changed() = false for a first install")
				}
				got := strings.ReplaceAll(out.String(), home, "/home/u")
				checkGolden(t, "dry-run-"+op+"-"+tc.goos+".golden", got)
			})
		}
	}
}

// fakeRunKeyIf returns an in-memory Run key for windows: the registry is an
// OS edge that cannot run here.
func fakeRunKeyIf(goos string) RunKey {
	if goos != "windows" {
		return nil
	}
	return &memRunKey{}
}

type memRunKey struct{ values map[string]string }

func (k *memRunKey) Value(name string) (string, bool, error) {
	v, ok := k.values[name]
	return v, ok, nil
}

func (k *memRunKey) SetValue(name, data string) error {
	if k.values == nil {
		k.values = map[string]string{}
	}
	k.values[name] = data
	return nil
}

func (k *memRunKey) DeleteValue(name string) error {
	delete(k.values, name)
	return nil
}

func checkFile(t *testing.T, name, want string) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", name, fi.Mode().Perm())
	}
}

func checkGone(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Lstat(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists (lstat: %v)", n, err)
		}
	}
}

func render(t *testing.T, name, exe, home string) string {
	t.Helper()
	s, err := Render(name, exe, home)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInstallLinux(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "xdg-config")
	exe := filepath.Join(home, "bin", "mcpkey")
	rec := &recorder{}
	var out strings.Builder
	opts := InstallOptions{GOOS: "linux", Exe: exe, Home: home, ConfigHome: cfg, Tray: true, Run: rec.run, Out: &out, UID: uid(1000)}
	service := filepath.Join(cfg, "systemd", "user", "mcpkey.service")
	socket := filepath.Join(cfg, "systemd", "user", "mcpkey.socket")
	desktop := filepath.Join(cfg, "autostart", "mcpkey.desktop")

	plan, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, service, render(t, "linux/mcpkey.service", exe, home))
	checkFile(t, socket, render(t, "linux/mcpkey.socket", exe, home))
	checkFile(t, desktop, render(t, "linux/mcpkey.desktop", exe, home))
	if !strings.Contains(render(t, "linux/mcpkey.service", exe, home), "\nExecStart="+exe+" agent\n") {
		t.Errorf("service does not run %s agent", exe)
	}
	if !strings.Contains(render(t, "linux/mcpkey.desktop", exe, home), "\nExec="+exe+" agent --tray\n") {
		t.Errorf("desktop entry does not run %s agent --tray", exe)
	}
	wantCalls := []string{"systemctl --user daemon-reload", "systemctl --user enable --now mcpkey.socket"}
	if got := rec.take(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("first install ran %q, want %q", got, wantCalls)
	}
	if !plan.Changed() {
		t.Error("first install: Plan.Changed() = false")
	}
	for _, want := range []string{"wrote " + service, "wrote " + socket, "wrote " + desktop, "ran: systemctl --user enable --now mcpkey.socket"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Idempotent: nothing rewritten, no reload.
	out.Reset()
	before, _ := os.Stat(service)
	plan, err = Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Changed() {
		t.Errorf("second install changed something: %+v", plan.Steps)
	}
	if got, want := rec.take(), []string{"systemctl --user enable --now mcpkey.socket"}; !reflect.DeepEqual(got, want) {
		t.Errorf("second install ran %q, want %q", got, want)
	}
	for _, f := range []string{service, socket, desktop} {
		if !strings.Contains(out.String(), "unchanged "+f+"\n") {
			t.Errorf("second install does not say unchanged %s:\n%s", f, out.String())
		}
	}
	if after, _ := os.Stat(service); !after.ModTime().Equal(before.ModTime()) {
		t.Error("second install rewrote the service")
	}

	// A wrong mode is repaired.
	if err := os.Chmod(socket, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, socket, render(t, "linux/mcpkey.socket", exe, home))
	if got, want := rec.take(), []string{"systemctl --user daemon-reload", "systemctl --user enable --now mcpkey.socket"}; !reflect.DeepEqual(got, want) {
		t.Errorf("mode repair ran %q, want %q", got, want)
	}

	// A moved binary rewrites the service and restarts a running agent.
	opts.Exe = filepath.Join(home, "new bin", "mcpkey")
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, service, render(t, "linux/mcpkey.service", opts.Exe, home))
	wantCalls = []string{"systemctl --user daemon-reload", "systemctl --user try-restart mcpkey.service", "systemctl --user enable --now mcpkey.socket"}
	if got := rec.take(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("install after a move ran %q, want %q", got, wantCalls)
	}

	// Uninstall removes everything, once.
	out.Reset()
	plan, err = Uninstall(opts)
	if err != nil {
		t.Fatal(err)
	}
	checkGone(t, service, socket, desktop)
	wantCalls = []string{"systemctl --user disable --now mcpkey.socket mcpkey.service", "systemctl --user daemon-reload"}
	if got := rec.take(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("uninstall ran %q, want %q", got, wantCalls)
	}
	if !plan.Changed() || !strings.Contains(out.String(), "removed "+service+"\n") {
		t.Errorf("uninstall output:\n%s", out.String())
	}
	out.Reset()
	plan, err = Uninstall(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 || plan.Changed() {
		t.Errorf("second uninstall ran %q, changed %v", got, plan.Changed())
	}
	if !strings.Contains(out.String(), "not present "+desktop+"\n") {
		t.Errorf("second uninstall output:\n%s", out.String())
	}
}

func TestInstallLinuxWithoutTrayKeepsTray(t *testing.T) {
	home := t.TempDir()
	rec := &recorder{}
	opts := InstallOptions{GOOS: "linux", Exe: "/usr/local/bin/mcpkey", Home: home, ConfigHome: home + "/c", Run: rec.run, UID: uid(1000)}
	desktop := filepath.Join(home, "c", "autostart", "mcpkey.desktop")
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	checkGone(t, desktop)
	opts.Tray = true
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	opts.Tray = false
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, desktop, render(t, "linux/mcpkey.desktop", opts.Exe, home))
}

func TestInstallLinuxCommandFails(t *testing.T) {
	home := t.TempDir()
	boom := errors.New("exit status 1: Failed to connect to bus")
	rec := &recorder{fail: map[string]error{"systemctl --user daemon-reload": boom}}
	plan, err := Install(InstallOptions{GOOS: "linux", Exe: "/usr/bin/mcpkey", Home: home, ConfigHome: home + "/c", Run: rec.run, UID: uid(1000)})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "systemctl --user daemon-reload: ") {
		t.Fatalf("err = %v, want the failing command wrapping %v", err, boom)
	}
	if got := rec.take(); len(got) != 1 {
		t.Errorf("ran %q after a failure", got)
	}
	if len(plan.Steps) != 3 {
		t.Errorf("plan has %d steps, want the 2 writes and the failed command", len(plan.Steps))
	}

	// Uninstall goes on when systemd cannot stop the service.
	rec = &recorder{fail: map[string]error{"systemctl --user disable --now mcpkey.socket mcpkey.service": boom}}
	var out strings.Builder
	plan, err = Uninstall(InstallOptions{GOOS: "linux", Exe: "/usr/bin/mcpkey", Home: home, ConfigHome: home + "/c", Run: rec.run, Out: &out, UID: uid(1000)})
	if err != nil {
		t.Fatal(err)
	}
	checkGone(t, filepath.Join(home, "c", "systemd", "user", "mcpkey.service"))
	if plan.Steps[0].Warning == "" || !strings.Contains(out.String(), "warning: systemctl --user disable --now") {
		t.Errorf("no warning for the failed disable: %+v\n%s", plan.Steps[0], out.String())
	}
}

func TestInstallDarwin(t *testing.T) {
	home := t.TempDir()
	exe := "/opt/homebrew/bin/mcpkey"
	rec := &recorder{fail: map[string]error{
		"launchctl print gui/501/com.mcpkey.agent": errors.New("exit status 113: could not find service"),
	}}
	var out strings.Builder
	opts := InstallOptions{GOOS: "darwin", Exe: exe, Home: home, Tray: true, Run: rec.run, Out: &out, UID: uid(501)}
	agent := filepath.Join(home, "Library", "LaunchAgents", "com.mcpkey.agent.plist")
	tray := filepath.Join(home, "Library", "LaunchAgents", "com.mcpkey.tray.plist")
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, agent, render(t, "darwin/com.mcpkey.agent.plist", exe, home))
	checkFile(t, tray, render(t, "darwin/com.mcpkey.tray.plist", exe, home))
	want := []string{"launchctl bootstrap gui/501 " + agent, "launchctl bootstrap gui/501 " + tray}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("install ran %q, want %q", got, want)
	}

	// Unchanged: bootstrap only what launchd does not have (the agent here).
	out.Reset()
	plan, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"launchctl print gui/501/com.mcpkey.agent", "launchctl bootstrap gui/501 " + agent, "launchctl print gui/501/com.mcpkey.tray"}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("second install ran %q, want %q", got, want)
	}
	if plan.Changed() || !strings.Contains(out.String(), "unchanged "+agent+"\n") || !strings.Contains(out.String(), "loaded com.mcpkey.tray\n") {
		t.Errorf("second install: changed %v, output:\n%s", plan.Changed(), out.String())
	}

	// A changed plist is unloaded, then loaded again.
	opts.Exe = "/usr/local/bin/mcpkey"
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	want = []string{"launchctl bootout gui/501/com.mcpkey.agent", "launchctl bootstrap gui/501 " + agent,
		"launchctl bootout gui/501/com.mcpkey.tray", "launchctl bootstrap gui/501 " + tray}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("changed install ran %q, want %q", got, want)
	}

	if _, err := Uninstall(opts); err != nil {
		t.Fatal(err)
	}
	checkGone(t, agent, tray)
	want = []string{"launchctl bootout gui/501/com.mcpkey.agent", "launchctl bootout gui/501/com.mcpkey.tray"}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("uninstall ran %q, want %q", got, want)
	}
}

func TestInstallWindowsRunKey(t *testing.T) {
	key := &memRunKey{}
	var out strings.Builder
	exe := `C:\Program Files\mcpkey\mcpkey.exe`
	opts := InstallOptions{GOOS: "windows", Exe: exe, Tray: true, Out: &out, RunKey: key, UID: uid(-1)}
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	if got, want := key.values["mcpkey"], `"C:\Program Files\mcpkey\mcpkey.exe" agent --tray`; got != want {
		t.Errorf("Run value = %q, want %q", got, want)
	}
	plan, err := Install(opts)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Changed() || !strings.Contains(out.String(), `unchanged HKCU\Software\Microsoft\Windows\CurrentVersion\Run\mcpkey`) {
		t.Errorf("second install: changed %v\n%s", plan.Changed(), out.String())
	}
	if _, err := Uninstall(opts); err != nil {
		t.Fatal(err)
	}
	if _, ok := key.values["mcpkey"]; ok {
		t.Error("uninstall left the Run value")
	}
	plan, err = Uninstall(opts)
	if err != nil || plan.Changed() {
		t.Errorf("second uninstall: %v, changed %v", err, plan.Changed())
	}
}

func TestInstallWindowsNeedsRegistry(t *testing.T) {
	if openRunKey() != nil {
		t.Skip("this system has a registry")
	}
	_, err := Install(InstallOptions{GOOS: "windows", Exe: `C:\mcpkey.exe`})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported", err)
	}
}

func TestInstallRefusesRoot(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		for _, dry := range []bool{false, true} {
			home := t.TempDir()
			rec := &recorder{}
			opts := InstallOptions{GOOS: goos, Exe: "/usr/bin/mcpkey", Home: home, ConfigHome: home + "/c", DryRun: dry, Run: rec.run, UID: uid(0)}
			for name, f := range map[string]func(InstallOptions) (Plan, error){"install": Install, "uninstall": Uninstall} {
				_, err := f(opts)
				if err == nil || err.Error() != "refusing to install a per-user service as root; run as the user" {
					t.Errorf("%s %s (dry run %v) as root: err = %v", goos, name, dry, err)
				}
			}
			if entries, _ := os.ReadDir(home); len(entries) != 0 || len(rec.calls) != 0 {
				t.Errorf("%s: refused install still wrote %v or ran %q", goos, entries, rec.calls)
			}
		}
	}
	// Windows has no uid 0 (os.Getuid is -1); a dry run goes ahead.
	if _, err := Install(InstallOptions{GOOS: "windows", Exe: `C:\mcpkey.exe`, DryRun: true, UID: uid(0)}); err != nil {
		t.Errorf("windows dry run: %v", err)
	}
}

func TestInstallRejectsBadInput(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct{ goos, exe, home, want string }{
		{"linux", "mcpkey", home, "is not absolute"},
		{"linux", "/usr/bin/mc\npkey", home, "control characters"},
		{"linux", "/tmp/go-build123/b001/exe/mcpkey", home, "temporary `go run` binary"},
		{"windows", `C:\Users\u\AppData\Local\Temp\go-build1\b001\exe\mcpkey.exe`, home, "temporary `go run` binary"},
		{"windows", `mcpkey.exe`, home, "is not absolute"},
		{"linux", "/usr/bin/mcpkey", "relative/home", "not a clean absolute path"},
		{"plan9", "/bin/mcpkey", home, "not supported on plan9"},
	} {
		_, err := Install(InstallOptions{GOOS: tc.goos, Exe: tc.exe, Home: tc.home, DryRun: true, UID: uid(1000)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Install(%s, %q, %q) = %v, want an error with %q", tc.goos, tc.exe, tc.home, err, tc.want)
		}
	}
}

func TestQuoting(t *testing.T) {
	for _, tc := range []struct{ in, systemd, desktop string }{
		{"/usr/bin/mcpkey", "/usr/bin/mcpkey", "/usr/bin/mcpkey"},
		{"/home/a b/mcpkey", `"/home/a b/mcpkey"`, `"/home/a b/mcpkey"`},
		{"/opt/100%/$x/mcpkey", "/opt/100%%/$$x/mcpkey", `"/opt/100%%/\\$x/mcpkey"`},
		{`/opt/q"uo\te/mcpkey`, `"/opt/q\"uo\\te/mcpkey"`, `"/opt/q\\"uo\\\\te/mcpkey"`},
	} {
		if got := systemdQuote(tc.in); got != tc.systemd {
			t.Errorf("systemdQuote(%q) = %s, want %s", tc.in, got, tc.systemd)
		}
		if got := desktopQuote(tc.in); got != tc.desktop {
			t.Errorf("desktopQuote(%q) = %s, want %s", tc.in, got, tc.desktop)
		}
	}
	if got := xmlEscape("/a&b/<c>"); got != "/a&amp;b/&lt;c&gt;" {
		t.Errorf("xmlEscape = %s", got)
	}
}

// TestUnitsVerify checks the rendered units with systemd's own parser,
// including an ExecStart path that needs quoting: systemd-analyze reports
// a binary it cannot find, so a wrong quote fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (package systemd)")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "odd dir 100%", "mcpkey")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	units := filepath.Join(dir, "units")
	for _, u := range []string{"mcpkey.service", "mcpkey.socket"} {
		if err := os.MkdirAll(units, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(units, u), []byte(render(t, "linux/"+u, exe, dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtimeDir := t.TempDir()
	verify := func() ([]byte, error) {
		cmd := exec.Command(analyze, "--user", "--man=no", "verify", filepath.Join(units, "mcpkey.socket"), filepath.Join(units, "mcpkey.service"))
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir)
		return cmd.CombinedOutput()
	}
	out, err := verify()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: a unit naming a missing binary is reported.
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	out, err = verify()
	if err == nil || !strings.Contains(string(out), "is not executable") {
		t.Errorf("systemd-analyze verify with the binary gone: %v\n%s", err, out)
	}
}
