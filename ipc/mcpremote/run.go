package mcpremote

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
)

// Help is `mcpkey help import`.
const Help = `Moves the logins mcp-remote (the npm stdio proxy) left in plain files into
the agent's keyring. It reads mcp-remote's store ($MCP_REMOTE_CONFIG_DIR, else
~/.mcp-auth: mcp-remote-*/<hash>_tokens.json and <hash>_client_info.json),
finds each session's server URL (the files name it only by its MD5: from --url,
mcp-remote's debug log, or an MCP host's configuration that runs mcp-remote),
and hands each session with its client registration to the agent over its
socket. The agent discovers the server's authorization server and refreshes
once: a session is imported only when its refresh token works, and from then on
the agent alone refreshes it (mcp-remote's copy of the refresh token is spent).

Then it offers to delete the imported sessions' plaintext files: a y/N prompt on
a terminal; --delete deletes without asking; otherwise they are kept. Sessions
skipped (URL unknown, no refresh token, a refresh that failed, a session mcpkey
already holds, ...) are listed with the reason; their files are never touched,
except that --delete (or yes) also removes those of servers mcpkey already
holds a session for. Point your MCP host at 'mcpkey bridge <url>' afterwards
(mcpkey config snippet prints the entry).

examples:
  mcpkey import mcp-remote
  mcpkey import mcp-remote --url https://mcp.example.com/mcp --delete
  mcpkey import mcp-remote --dry-run
  MCP_REMOTE_CONFIG_DIR=~/work/.mcp-auth mcpkey import mcp-remote
`

// Env is what Run needs from the CLI around it.
type Env struct {
	Client *ipc.Client
	// Agent runs call against the agent, starting one when none answers
	// (the CLI's withAgent).
	Agent func(call func() error) error
	// Parse parses fs's flags and npos positional arguments (the CLI's
	// parse); Usagef makes a usage error.
	Parse  func(fs *flag.FlagSet, args []string, npos int) ([]string, error)
	Usagef func(format string, a ...any) error
	Getenv func(string) string
	// Home and WD are the home and working directories (host
	// configurations are looked for there).
	Home, WD string
	In       io.Reader // answers the prompt
	Err      io.Writer // the report and the prompt
	// Interactive: In is a terminal, so the prompt may be asked.
	Interactive bool
}

// outcome is what became of one entry.
type outcome struct {
	e      Entry
	status string // "imported", "held" (mcpkey already holds a session), "skipped"
	reason string
	info   api.SessionInfo
}

// Run is `mcpkey import mcp-remote [flags]`.
func Run(ctx context.Context, fs *flag.FlagSet, args []string, env Env) error {
	var urls urlList
	fs.Var(&urls, "url", "the server `URL` mcp-remote was run with (repeatable); needed when neither mcp-remote's debug log nor an MCP host's configuration names it")
	dir := fs.String("dir", "", "mcp-remote's configuration directory (default: $MCP_REMOTE_CONFIG_DIR, else ~/.mcp-auth)")
	del := fs.Bool("delete", false, "delete the imported sessions' plaintext files without asking")
	dry := fs.Bool("dry-run", false, "only report what would be imported: no agent, nothing deleted")
	account := fs.String("account", "", "account label for the imported sessions")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if _, err := env.Parse(fs, args, 0); err != nil {
			return err
		}
		return env.Usagef("missing what to import: mcp-remote")
	}
	if args[0] != "mcp-remote" {
		return env.Usagef("cannot import from %q: mcp-remote is the only source so far", args[0])
	}
	if _, err := env.Parse(fs, args[1:], 0); err != nil {
		return err
	}
	base := *dir
	if base == "" {
		base = BaseDir(env.Getenv, env.Home)
	}
	var cands []Candidate
	for _, u := range urls {
		cands = append(cands, Candidate{URL: u, From: "--url"})
	}
	cands = append(cands, HostCandidates(env.Home, env.WD)...)
	entries, err := Scan(base, cands)
	if err != nil {
		return err
	}
	w := env.Err
	if len(entries) == 0 {
		fmt.Fprintf(w, "mcpkey: no mcp-remote sessions in %s\n", base)
		return nil
	}
	fmt.Fprintf(w, "mcpkey: found %d mcp-remote session(s) in %s\n", len(entries), base)
	var outs []outcome
	var held map[string]bool
	for _, e := range entries {
		o := outcome{e: e, status: "skipped"}
		switch {
		case e.Problem != "":
			o.reason = e.Problem
		case e.URL == "":
			o.reason = "server URL unknown (mcp-remote's files name it only by its MD5)"
		case *dry:
			o.status, o.reason = "would import", "from "+e.URLFrom
		default:
			if held == nil {
				if held, err = heldSessions(ctx, env, *account); err != nil {
					return err
				}
			}
			o.status, o.reason, o.info, err = importOne(ctx, env, e, *account, held)
			if err != nil {
				return err // the agent cannot import anything now (locked, no keyring, ...)
			}
		}
		outs = append(outs, o)
		report(w, o)
	}
	var deletable []outcome
	failed := 0
	for _, o := range outs {
		switch o.status {
		case "imported", "held":
			deletable = append(deletable, o)
		case "skipped":
			if !strings.HasPrefix(o.e.Problem, "no tokens") {
				failed++
			}
		}
	}
	if !*dry && len(deletable) > 0 {
		if err := offerDelete(w, env, deletable, *del); err != nil {
			return err
		}
	}
	if failed > 0 {
		msg := fmt.Sprintf("%d of %d mcp-remote session(s) not imported; their files are left as they were", failed, len(outs))
		if hasUnknownURL(outs) {
			// The CLI prints the error, then this hint under it.
			msg += "\nhint: name the server: mcpkey import mcp-remote --url <the URL mcp-remote was run with>"
		}
		return errors.New(msg)
	}
	return nil
}

// urlList is the repeatable --url.
type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, " ") }
func (u *urlList) Set(v string) error { *u = append(*u, v); return nil }

// Repeatable marks the flag "may be repeated" in the man page and completions.
func (u *urlList) Repeatable() bool { return true }

// heldSessions returns the canonical URLs of the servers for which the
// agent holds a usable session for account.
func heldSessions(ctx context.Context, env Env, account string) (map[string]bool, error) {
	var ss []api.SessionInfo
	err := env.Agent(func() (err error) { ss, err = env.Client.Sessions(ctx); return err })
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, s := range ss {
		if s.Account == account && (s.State == api.StateReady || s.State == api.StateRefreshing || s.State == api.StateError) {
			held[s.Server] = true
		}
	}
	return held, nil
}

// importOne hands e to the agent. It returns an error only when the agent
// cannot import anything now (locked, its keyring unavailable, gone, or
// the caller refused): every other failure is e's reason.
func importOne(ctx context.Context, env Env, e Entry, account string, held map[string]bool) (status, reason string, info api.SessionInfo, err error) {
	sc, err := env.Client.ResolveServer(ctx, e.URL)
	if err != nil {
		if stopsAll(err) {
			return "", "", info, err
		}
		return "skipped", err.Error(), info, nil
	}
	if held[sc.URL] {
		return "held", "mcpkey already holds a session for it", info, nil
	}
	t, c := e.Tokens, e.Client
	info, err = env.Client.Import(ctx, api.ImportRequest{
		Server: e.URL, Account: account, From: "mcp-remote",
		AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType,
		ExpiresAt: t.ExpiresAt, Scopes: t.Scopes,
		Client: api.ImportedClient{ClientID: c.ClientID, ClientSecret: c.ClientSecret,
			TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, Issuer: c.Issuer},
	})
	if err != nil {
		if stopsAll(err) {
			return "", "", info, err
		}
		return "skipped", err.Error(), info, nil
	}
	held[info.Server] = true
	return "imported", "", info, nil
}

// stopsAll reports whether err ends the whole import rather than one
// session's.
func stopsAll(err error) bool {
	return errors.Is(err, api.ErrLocked) || errors.Is(err, api.ErrStoreUnavailable) ||
		errors.Is(err, ipc.ErrNoAgent) || errors.Is(err, context.Canceled)
}

func report(w io.Writer, o outcome) {
	name := cmp.Or(o.e.URL, o.e.Hash)
	switch o.status {
	case "imported":
		life := "the server gave no token lifetime"
		if !o.info.ExpiresAt.IsZero() {
			life = fmt.Sprintf("token valid for %d min", int(time.Until(o.info.ExpiresAt).Round(time.Minute).Minutes()))
		}
		fmt.Fprintf(w, "mcpkey: imported %s (issuer %s, client %s; refreshed once, %s)\n", o.info.Server, o.info.Issuer, o.info.ClientID, life)
	case "would import":
		fmt.Fprintf(w, "mcpkey: would import %s (URL %s; client %s)\n", name, o.reason, o.e.Client.ClientID)
	case "held":
		fmt.Fprintf(w, "mcpkey: skipped %s: %s\n", name, o.reason)
	default:
		fmt.Fprintf(w, "mcpkey: skipped %s (%s): %s\n", name, o.e.Dir, o.reason)
	}
}

func hasUnknownURL(outs []outcome) bool {
	for _, o := range outs {
		if o.status == "skipped" && o.e.Problem == "" && o.e.URL == "" {
			return true
		}
	}
	return false
}

// offerDelete deletes the files of the entries in ds when del is set or
// the user answers yes; never without one of them.
func offerDelete(w io.Writer, env Env, ds []outcome, del bool) error {
	n := 0
	for _, o := range ds {
		n += len(o.e.Files)
	}
	if !del {
		if !env.Interactive {
			fmt.Fprintf(w, "mcpkey: kept mcp-remote's %d plaintext file(s) of the sessions mcpkey now holds; run again with --delete to remove them\n", n)
			return nil
		}
		fmt.Fprintf(w, "mcpkey: mcp-remote keeps these sessions in %d plaintext file(s):\n", n)
		for _, o := range ds {
			fmt.Fprintf(w, "    %s_*  (%s)\n", strings.TrimSuffix(o.e.Dir, "/")+"/"+o.e.Hash, o.e.URL)
		}
		fmt.Fprint(w, "Delete them? mcp-remote then signs in again the next time it runs (use mcpkey bridge instead). [y/N] ")
		line, err := bufio.NewReader(env.In).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the answer: %w", err)
		}
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(w, "mcpkey: kept them")
			return nil
		}
	}
	var first error
	deleted := 0
	for _, o := range ds {
		if err := o.e.Delete(); err != nil {
			fmt.Fprintf(w, "mcpkey: %v\n", err)
			first = cmp.Or(first, err)
			continue
		}
		deleted += len(o.e.Files)
	}
	fmt.Fprintf(w, "mcpkey: deleted %d plaintext file(s)\n", deleted)
	return first
}
