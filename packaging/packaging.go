// Package packaging installs mcpkey like a native app: a systemd user
// service and socket on Linux, LaunchAgents on macOS, the Run key on Windows,
// plus an XDG autostart entry for the tray. The unit files are embedded, so the
// binary installs itself (`mcpkey install`); the same files, rendered for
// /usr/bin/mcpkey, go into the .deb and .rpm (see nfpm.yaml and build-deb.sh).
//
// It also holds what the packages ship beside the binary and the service
// files: shell completions and the man page, generated from main's command
// table ([Command]), and [ActivationListener], the agent's side of systemd
// socket activation.
package packaging

import (
	"bytes"
	"embed"
	"encoding/xml"
	"fmt"
	"io/fs"
	"strings"
	"text/template"

	"github.com/mcpkey/mcpkey/internal/safefile"
)

//go:embed linux/mcpkey.service linux/mcpkey.socket linux/mcpkey.desktop darwin/com.mcpkey.agent.plist darwin/com.mcpkey.tray.plist
var files embed.FS

// Names of the installed units and entries.
const (
	ServiceUnit  = "mcpkey.service"
	SocketUnit   = "mcpkey.socket"
	DesktopEntry = "mcpkey.desktop"
	AgentLabel   = "com.mcpkey.agent" // launchd label of the agent
	TrayLabel    = "com.mcpkey.tray"  // launchd label of the tray
	RunKeyPath   = `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`
	RunValueName = "mcpkey" // the value under RunKeyPath
)

// PackageExe is where the .deb and .rpm put the binary; the unit files they
// ship are rendered for it.
const PackageExe = "/usr/bin/mcpkey"

// fileMode is the mode of every file Install writes: units are data, not
// programs, and only the user's own service manager reads them (see
// internal/safefile: every file mcpkey writes is 0600).
const fileMode fs.FileMode = safefile.Mode

// templateData is what the embedded files are rendered with.
type templateData struct {
	Exe  string // absolute path of the mcpkey binary
	Home string // the user's home directory (macOS log paths)
}

var funcs = template.FuncMap{
	"systemd": systemdQuote,
	"desktop": desktopQuote,
	"xml":     xmlEscape,
}

// Render returns the embedded file name ("linux/mcpkey.service",
// "darwin/com.mcpkey.agent.plist", ...) rendered for the binary exe and the
// home directory home (used by the macOS log paths only).
func Render(name, exe, home string) (string, error) {
	src, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("packaging file %s: %w", name, err)
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, templateData{Exe: exe, Home: home}); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// systemdQuote quotes one word of an Exec= line (systemd.service(5),
// "Command lines"): specifiers take %%, variables $$, and a word with
// whitespace or quotes goes in double quotes with C-style escapes.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	s = strings.ReplaceAll(s, "$", "$$")
	if !strings.ContainsAny(s, " \t\n\"'\\;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// desktopQuote quotes one argument of a desktop entry's Exec key (Desktop
// Entry Specification, "The Exec key"): reserved characters need double
// quotes, inside which ", `, $ and \ take a backslash; then the value is
// escaped as a string value (\ doubles) and % doubles (field codes).
func desktopQuote(s string) string {
	if strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`") {
		r := strings.NewReplacer(`"`, `\"`, "`", "\\`", `$`, `\$`, `\`, `\\`)
		s = `"` + r.Replace(s) + `"`
	}
	s = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`).Replace(s)
	return strings.ReplaceAll(s, "%", "%%")
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// windowsRunValue is the command line stored under the Run key.
func windowsRunValue(exe string, tray bool) string {
	// Windows paths cannot contain '"', so plain double quotes suffice.
	v := `"` + exe + `" agent`
	if tray {
		v += " --tray"
	}
	return v
}
