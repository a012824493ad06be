package packaging

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

// InstallOptions says what Install and Uninstall do and where. The zero value
// installs the running binary for the current user on the current OS.
type InstallOptions struct {
	// GOOS selects the platform: "linux", "darwin" or "windows". Empty means
	// runtime.GOOS. Tests inject it to check every platform's dry run.
	GOOS string
	// Exe is the absolute path of the mcpkey binary the service runs. Empty
	// means os.Executable(). Symlinks are kept as given, so a package
	// manager's stable link survives upgrades.
	Exe string
	// Home is the user's home directory. Empty means os.UserHomeDir().
	Home string
	// ConfigHome is the XDG config directory (Linux). Empty means
	// $XDG_CONFIG_HOME when it is absolute, else Home/.config.
	ConfigHome string
	// Tray also installs the tray's login item: the XDG autostart entry on
	// Linux, the com.mcpkey.tray LaunchAgent on macOS, "agent --tray" in the
	// Run key on Windows. Install without Tray leaves an existing tray entry
	// alone; Uninstall always removes it.
	Tray bool
	// DryRun prints the files and commands (with the files' contents) and
	// changes nothing. It still reads what is installed, to say "unchanged".
	DryRun bool
	// Run runs a service manager command (systemctl, launchctl) and reports
	// a failure with the command's output. Nil means os/exec.
	Run func(name string, args ...string) error
	// Out receives one line per step, as it happens. Nil means io.Discard.
	Out io.Writer
	// UID is the installing user's id, used for launchctl's gui/<uid> domain
	// and to refuse root (0) on Linux and macOS. Nil means os.Getuid().
	UID *int
	// RunKey is the Windows Run key. Nil means HKCU's real key on Windows;
	// on other systems only a dry run works without one.
	RunKey RunKey
}

// RunKey is the part of the Windows registry Install uses: the string values
// under HKCU\Software\Microsoft\Windows\CurrentVersion\Run.
type RunKey interface {
	// Value returns the value name's data and whether it exists.
	Value(name string) (string, bool, error)
	SetValue(name, data string) error
	DeleteValue(name string) error
}

// Op is what a Step does.
type Op string

const (
	OpWrite       Op = "write"        // write a file (mode 0600)
	OpRemove      Op = "remove"       // remove a file
	OpRun         Op = "run"          // run a service manager command
	OpSetValue    Op = "set value"    // set a Run key value
	OpDeleteValue Op = "delete value" // delete a Run key value
)

// Step is one thing Install or Uninstall did, or would do in a dry run.
type Step struct {
	Op Op
	// Path is the file, or the registry value as RunKeyPath\RunValueName.
	Path string
	// Content is the file's content (OpWrite) or the value's data
	// (OpSetValue).
	Content string
	// Args is the command line (OpRun).
	Args []string
	// Changed is false when the file or value already was as wanted, so the
	// step did nothing.
	Changed bool
	// Warning is a failure that did not stop the plan: a service that could
	// not be stopped during Uninstall.
	Warning string
}

// Plan is the list of steps, in order.
type Plan struct {
	Steps []Step
}

// Changed reports whether any file or value was (or would be) changed.
func (p Plan) Changed() bool {
	for _, s := range p.Steps {
		if s.Changed && s.Op != OpRun {
			return true
		}
	}
	return false
}

// errRoot is returned for uid 0 on Linux and macOS.
var errRoot = errors.New("refusing to install a per-user service as root; run as the user")

// Install writes this OS's service files into the user's directories, then
// enables and starts them, printing each step to opts.Out:
//
//   - linux: ConfigHome/systemd/user/mcpkey.{service,socket} (and
//     ConfigHome/autostart/mcpkey.desktop with Tray); then
//     systemctl --user daemon-reload (when a unit changed),
//     systemctl --user try-restart mcpkey.service (when the service changed),
//     systemctl --user enable --now mcpkey.socket. The agent starts on the
//     first connection to $XDG_RUNTIME_DIR/mcpkey/agent.sock.
//   - darwin: Home/Library/LaunchAgents/com.mcpkey.agent.plist (and
//     com.mcpkey.tray.plist with Tray), each loaded with
//     launchctl bootstrap gui/<uid> <plist> unless already loaded.
//   - windows: the "mcpkey" value of the HKCU Run key.
//
// It is idempotent: files that already hold the wanted content are reported
// "unchanged" and not rewritten. On error the returned Plan holds the steps
// done so far.
func Install(opts InstallOptions) (Plan, error) {
	return runOn(opts, (*installer).installLinux, (*installer).installDarwin, (*installer).installWindows)
}

// Uninstall reverses Install: it stops and disables the services
// (best effort: a failure is printed as a warning, since removing the files
// is what keeps them from starting again), removes every file Install may
// have written, the tray's included, and reloads the service manager.
// Files already gone are reported "not present".
func Uninstall(opts InstallOptions) (Plan, error) {
	return runOn(opts, (*installer).uninstallLinux, (*installer).uninstallDarwin, (*installer).uninstallWindows)
}

// runOn runs the step of opts' OS and returns the plan of what it did.
func runOn(opts InstallOptions, linux, darwin, windows func(*installer) error) (Plan, error) {
	in, err := newInstaller(opts)
	if err != nil {
		return Plan{}, err
	}
	switch in.goos {
	case "linux":
		err = linux(in)
	case "darwin":
		err = darwin(in)
	case "windows":
		err = windows(in)
	}
	return in.plan, err
}

type installer struct {
	InstallOptions
	goos string
	uid  int
	out  io.Writer
	run  func(name string, args ...string) error
	plan Plan
}

func newInstaller(opts InstallOptions) (*installer, error) {
	in := &installer{InstallOptions: opts, goos: opts.GOOS, out: opts.Out, run: opts.Run}
	in.goos = cmp.Or(in.goos, runtime.GOOS)
	switch in.goos {
	case "linux", "darwin", "windows":
	default:
		return nil, fmt.Errorf("install is not supported on %s: %w; start mcpkey agent from your session's startup files", in.goos, errors.ErrUnsupported)
	}
	if opts.UID != nil {
		in.uid = *opts.UID
	} else {
		in.uid = os.Getuid()
	}
	if in.goos != "windows" && in.uid == 0 {
		return nil, errRoot
	}
	in.out = cmp.Or(in.out, io.Discard)
	if in.run == nil {
		in.run = runCommand
	}
	if in.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the mcpkey binary: %w", err)
		}
		in.Exe = exe
	}
	if err := checkExe(in.goos, in.Exe); err != nil {
		return nil, err
	}
	if in.goos != "windows" {
		if in.Home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("find the home directory: %w", err)
			}
			in.Home = h
		}
		if !strings.HasPrefix(in.Home, "/") || strings.ContainsAny(in.Home, "\n\r\x00") {
			return nil, fmt.Errorf("home directory %q is not a clean absolute path", in.Home)
		}
	}
	if in.goos == "linux" && in.ConfigHome == "" {
		if x := os.Getenv("XDG_CONFIG_HOME"); strings.HasPrefix(x, "/") {
			in.ConfigHome = x
		} else {
			in.ConfigHome = path.Join(in.Home, ".config")
		}
	}
	if in.goos == "windows" && in.RunKey == nil {
		in.RunKey = openRunKey() // nil when not on Windows
		if in.RunKey == nil && !in.DryRun {
			return nil, fmt.Errorf("the Windows Run key can only be written on Windows: %w", errors.ErrUnsupported)
		}
	}
	return in, nil
}

// checkExe refuses binaries that would make a broken or fragile service: a
// relative path, a path with control characters (they would split a unit
// file's lines), or a `go run` binary, which the Go cache deletes.
func checkExe(goos, exe string) error {
	abs := strings.HasPrefix(exe, "/")
	if goos == "windows" {
		abs = len(exe) > 3 && exe[1] == ':' && (exe[2] == '\\' || exe[2] == '/') || strings.HasPrefix(exe, `\\`)
	}
	if !abs {
		return fmt.Errorf("the mcpkey binary path %q is not absolute", exe)
	}
	if strings.IndexFunc(exe, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("the mcpkey binary path %q has control characters", exe)
	}
	if strings.Contains(exe, "/go-build") || strings.Contains(exe, `\go-build`) {
		return fmt.Errorf("%s is a temporary `go run` binary; install mcpkey first (go install, or a package) and run that binary's install", exe)
	}
	return nil
}

// runCommand is the default Run: the command's output is only shown when it
// fails (systemctl and launchctl print no secrets).
func runCommand(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

func (in *installer) printf(format string, a ...any) {
	fmt.Fprintf(in.out, format, a...)
}

// writeFile makes name hold content with mode 0600, atomically, unless it
// already does. It reports whether the file changed and whether it existed.
func (in *installer) writeFile(name, content string) (changed, existed bool, err error) {
	old, err := os.ReadFile(name)
	existed = err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, false, fmt.Errorf("read %s: %w", name, err)
	}
	if existed && bytes.Equal(old, []byte(content)) {
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm() == fileMode {
			in.plan.Steps = append(in.plan.Steps, Step{Op: OpWrite, Path: name, Content: content})
			in.printf("unchanged %s\n", name)
			return false, true, nil
		}
	}
	in.plan.Steps = append(in.plan.Steps, Step{Op: OpWrite, Path: name, Content: content, Changed: true})
	if in.DryRun {
		in.printf("would write %s (%04o):\n%s", name, fileMode, indent(content))
		return true, existed, nil
	}
	if err := atomicWrite(name, content); err != nil {
		return false, existed, err
	}
	in.printf("wrote %s\n", name)
	return true, existed, nil
}

func atomicWrite(name, content string) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return safefile.WriteFile(name, []byte(content), fileMode)
}

// removeFile removes name and reports whether it was there.
func (in *installer) removeFile(name string) (bool, error) {
	_, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		in.plan.Steps = append(in.plan.Steps, Step{Op: OpRemove, Path: name})
		in.printf("not present %s\n", name)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove %s: %w", name, err)
	}
	in.plan.Steps = append(in.plan.Steps, Step{Op: OpRemove, Path: name, Changed: true})
	if in.DryRun {
		in.printf("would remove %s\n", name)
		return true, nil
	}
	if err := os.Remove(name); err != nil {
		return false, fmt.Errorf("remove %s: %w", name, err)
	}
	in.printf("removed %s\n", name)
	return true, nil
}

// command runs a service manager command (or prints it in a dry run). With
// bestEffort a failure becomes a warning step instead of an error.
func (in *installer) command(bestEffort bool, args ...string) error {
	step := Step{Op: OpRun, Args: args, Changed: true}
	line := strings.Join(args, " ")
	if in.DryRun {
		in.plan.Steps = append(in.plan.Steps, step)
		in.printf("would run: %s\n", line)
		return nil
	}
	if err := in.run(args[0], args[1:]...); err != nil {
		if !bestEffort {
			in.plan.Steps = append(in.plan.Steps, step)
			return fmt.Errorf("%s: %w", line, err)
		}
		step.Warning = err.Error()
		in.plan.Steps = append(in.plan.Steps, step)
		in.printf("warning: %s: %v\n", line, err)
		return nil
	}
	in.plan.Steps = append(in.plan.Steps, step)
	in.printf("ran: %s\n", line)
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "" {
			continue
		}
		if l != "\n" {
			b.WriteString("    ")
		}
		b.WriteString(l)
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

// ---- linux: systemd user units and XDG autostart ----

func (in *installer) linuxPaths() (unitDir, desktop string) {
	return path.Join(in.ConfigHome, "systemd", "user"), path.Join(in.ConfigHome, "autostart", DesktopEntry)
}

func (in *installer) installLinux() error {
	unitDir, desktop := in.linuxPaths()
	unitsChanged, serviceChanged := false, false
	for _, u := range []string{ServiceUnit, SocketUnit} {
		content, err := Render("linux/"+u, in.Exe, in.Home)
		if err != nil {
			return err
		}
		changed, existed, err := in.writeFile(path.Join(unitDir, u), content)
		if err != nil {
			return err
		}
		unitsChanged = unitsChanged || changed
		serviceChanged = serviceChanged || (u == ServiceUnit && changed && existed)
	}
	if in.Tray {
		content, err := Render("linux/"+DesktopEntry, in.Exe, in.Home)
		if err != nil {
			return err
		}
		if _, _, err := in.writeFile(desktop, content); err != nil {
			return err
		}
	}
	if unitsChanged {
		if err := in.command(false, "systemctl", "--user", "daemon-reload"); err != nil {
			return err
		}
	}
	if serviceChanged {
		// A running agent keeps its old command line until restarted.
		if err := in.command(false, "systemctl", "--user", "try-restart", ServiceUnit); err != nil {
			return err
		}
	}
	// enable --now is idempotent; it also repairs a socket someone disabled.
	return in.command(false, "systemctl", "--user", "enable", "--now", SocketUnit)
}

func (in *installer) uninstallLinux() error {
	unitDir, desktop := in.linuxPaths()
	service, socket := path.Join(unitDir, ServiceUnit), path.Join(unitDir, SocketUnit)
	if exists(service) || exists(socket) {
		if err := in.command(true, "systemctl", "--user", "disable", "--now", SocketUnit, ServiceUnit); err != nil {
			return err
		}
	}
	removed := false
	for _, f := range []string{service, socket, desktop} {
		ok, err := in.removeFile(f)
		if err != nil {
			return err
		}
		removed = removed || (ok && f != desktop)
	}
	if removed {
		return in.command(true, "systemctl", "--user", "daemon-reload")
	}
	return nil
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

// ---- darwin: LaunchAgents ----

func (in *installer) darwinAgents() []string {
	return []string{AgentLabel, TrayLabel}
}

func (in *installer) plistPath(label string) string {
	return path.Join(in.Home, "Library", "LaunchAgents", label+".plist")
}

func (in *installer) installDarwin() error {
	domain := "gui/" + strconv.Itoa(in.uid)
	for _, label := range in.darwinAgents() {
		if label == TrayLabel && !in.Tray {
			continue
		}
		content, err := Render("darwin/"+label+".plist", in.Exe, in.Home)
		if err != nil {
			return err
		}
		p := in.plistPath(label)
		changed, existed, err := in.writeFile(p, content)
		if err != nil {
			return err
		}
		switch {
		case changed && existed:
			// launchd keeps the old definition until the job is unloaded.
			if err := in.command(true, "launchctl", "bootout", domain+"/"+label); err != nil {
				return err
			}
		case !changed:
			if in.DryRun {
				in.printf("would run: launchctl bootstrap %s %s (unless %s is loaded)\n", domain, p, label)
				continue
			}
			if in.run("launchctl", "print", domain+"/"+label) == nil {
				in.printf("loaded %s\n", label)
				continue
			}
		}
		if err := in.command(false, "launchctl", "bootstrap", domain, p); err != nil {
			return err
		}
	}
	return nil
}

func (in *installer) uninstallDarwin() error {
	domain := "gui/" + strconv.Itoa(in.uid)
	for _, label := range in.darwinAgents() {
		p := in.plistPath(label)
		if exists(p) {
			if err := in.command(true, "launchctl", "bootout", domain+"/"+label); err != nil {
				return err
			}
		}
		if _, err := in.removeFile(p); err != nil {
			return err
		}
	}
	return nil
}

// ---- windows: the HKCU Run key ----

func (in *installer) installWindows() error {
	want := windowsRunValue(in.Exe, in.Tray)
	name := RunKeyPath + `\` + RunValueName
	if in.RunKey != nil {
		cur, ok, err := in.RunKey.Value(RunValueName)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if ok && cur == want {
			in.plan.Steps = append(in.plan.Steps, Step{Op: OpSetValue, Path: name, Content: want})
			in.printf("unchanged %s\n", name)
			return nil
		}
	}
	in.plan.Steps = append(in.plan.Steps, Step{Op: OpSetValue, Path: name, Content: want, Changed: true})
	if in.DryRun {
		in.printf("would set %s = %s\n", name, want)
		return nil
	}
	if err := in.RunKey.SetValue(RunValueName, want); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	in.printf("set %s = %s\n", name, want)
	in.printf("note: it starts at your next sign-in; start it now with: %s\n", want)
	return nil
}

func (in *installer) uninstallWindows() error {
	name := RunKeyPath + `\` + RunValueName
	present := true
	if in.RunKey != nil {
		_, ok, err := in.RunKey.Value(RunValueName)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		present = ok
	}
	if !present {
		in.plan.Steps = append(in.plan.Steps, Step{Op: OpDeleteValue, Path: name})
		in.printf("not present %s\n", name)
		return nil
	}
	in.plan.Steps = append(in.plan.Steps, Step{Op: OpDeleteValue, Path: name, Changed: true})
	if in.DryRun {
		in.printf("would delete %s\n", name)
		return nil
	}
	if err := in.RunKey.DeleteValue(RunValueName); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	in.printf("deleted %s\n", name)
	return nil
}
