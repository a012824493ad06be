// Command pkgfiles writes the files the .deb and .rpm ship beside the
// binary: the systemd user units and the autostart entry rendered for
// /usr/bin/mcpkey, and, with -docs, completions and a man page.
//
// build-deb.sh takes completions and the man page from the built binary
// (`mcpkey completion bash`, `mcpkey man`) when it has those commands; -docs
// is the fallback, from a placeholder command table kept close to main's.
//
//	go run ./packaging/internal/pkgfiles -out DIR [-docs] [-version V]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mcpkey/mcpkey/packaging"
)

func main() {
	out := flag.String("out", "", "directory to write into (created)")
	docs := flag.Bool("docs", false, "also write completions and the man page from the placeholder commands")
	version := flag.String("version", "dev", "version for the man page")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: pkgfiles -out DIR [-docs] [-version V]")
		os.Exit(2)
	}
	if err := run(*out, *docs, *version); err != nil {
		fmt.Fprintln(os.Stderr, "pkgfiles:", err)
		os.Exit(1)
	}
}

func run(out string, docs bool, version string) error {
	files := map[string]string{}
	for src, dst := range map[string]string{
		"linux/mcpkey.service": "units/mcpkey.service",
		"linux/mcpkey.socket":  "units/mcpkey.socket",
		"linux/mcpkey.desktop": "units/mcpkey.desktop",
	} {
		s, err := packaging.Render(src, packaging.PackageExe, "")
		if err != nil {
			return err
		}
		files[dst] = s
	}
	if docs {
		for _, sh := range []string{"bash", "zsh", "fish"} {
			s, err := packaging.Completion(sh, placeholderCommands)
			if err != nil {
				return err
			}
			files["completion."+sh] = s
		}
		files["mcpkey.1"] = packaging.ManPage(placeholderCommands, version)
	}
	for name, content := range files {
		p := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// placeholderCommands mirrors main's command table until the binary has
// `mcpkey completion` and `mcpkey man`.
var placeholderCommands = []packaging.Command{
	{Name: "agent", Args: "[flags]", Short: "run the agent in the foreground", Flags: []packaging.Flag{
		{Name: "socket", Value: "path", Usage: "socket path (default $MCPKEY_SOCK or the per-user runtime dir)"},
		{Name: "backend", Value: "string", Usage: "credential store: auto, secret-service, kwallet, keychain, wincred, keyctl, pass, file, memory"},
		{Name: "config", Value: "path", Usage: "config file"},
		{Name: "log-level", Value: "string", Usage: "debug, info, warn or error (default info)"},
		{Name: "passphrase-file", Value: "path", Usage: "file holding the file backend's passphrase"},
		{Name: "keyring-timeout", Value: "duration", Usage: "bound on every keyring call (default 10s)"},
		{Name: "tray", Usage: "also show the tray icon"},
	}},
	{Name: "login", Args: "<server> [flags]", Short: "sign in to an MCP server (OAuth, in your browser)", Flags: []packaging.Flag{
		{Name: "scope", Value: "string", Usage: "a scope to request", Repeatable: true},
		{Name: "account", Value: "string", Usage: "account label, when a server has several sessions"},
		{Name: "no-browser", Usage: "print the URL instead of opening a browser"},
	}},
	{Name: "token", Args: "<server> [flags]", Short: "print an access token for a server (for scripts)", Flags: []packaging.Flag{
		{Name: "scope", Value: "string", Usage: "a scope the token must carry", Repeatable: true},
		{Name: "account", Value: "string", Usage: "account label, when a server has several sessions"},
		{Name: "min-ttl", Value: "duration", Usage: "least remaining lifetime accepted (refresh first otherwise)"},
		{Name: "json", Usage: "print the token and its metadata as JSON"},
	}},
	{Name: "list", Aliases: "ls", Args: "[--json]", Short: "list sessions", Flags: []packaging.Flag{{Name: "json", Usage: "print JSON"}}},
	{Name: "status", Args: "[--json]", Short: "show the agent's state", Flags: []packaging.Flag{{Name: "json", Usage: "print JSON"}}},
	{Name: "logout", Args: "<server> [flags]", Short: "remove a session and revoke it at the authorization server", Flags: []packaging.Flag{
		{Name: "account", Value: "string", Usage: "account label, when a server has several sessions"},
	}},
	{Name: "probe", Args: "<server> [flags]", Short: "connect to an MCP server with the agent's token and list its tools"},
	{Name: "install", Args: "[--tray] [--dry-run]", Short: "start the agent at login (systemd, launchd, Run key)", Flags: []packaging.Flag{
		{Name: "tray", Usage: "also start the tray at login"},
		{Name: "dry-run", Usage: "print the files and commands only"},
	}},
	{Name: "uninstall", Args: "[--dry-run]", Short: "undo mcpkey install", Flags: []packaging.Flag{
		{Name: "dry-run", Usage: "print the files and commands only"},
	}},
	{Name: "completion", Args: "bash|zsh|fish", Short: "print shell completions"},
	{Name: "man", Short: "print the man page"},
	{Name: "version", Short: "print the version"},
}
