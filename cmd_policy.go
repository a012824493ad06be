package main

// The ssh-agent style commands: approvals, approve, deny, lock, unlock,
// socket and log. Wiring only: the logic is in agent and ipc.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

func policyCommands() []*command {
	return []*command{
		{name: "approvals", args: "[--json]", short: "list the token requests waiting for your approval", long: approvalsHelp, run: runApprovals},
		{name: "approve", args: "<id> [--remember]", short: "let a waiting program have its token", long: approveHelp, run: runApprove},
		{name: "deny", args: "<id> [--remember]", short: "refuse a waiting program its token", long: approveHelp, run: runDeny},
		{name: "lock", args: "[--passphrase]", short: "lock the agent: drop tokens from memory, refuse every request", long: lockHelp, run: runLock},
		{name: "unlock", args: "[--passphrase]", short: "unlock the agent", long: lockHelp, run: runUnlock},
		{name: "socket", args: "add|list|rm [flags]", short: "restricted sockets for forwarding to other machines (ssh -R)", long: socketHelp, run: runSocket},
		{name: "log", args: "[-f] [--server S] [--json]", short: "show the audit log", long: logHelp, run: runLog},
	}
}

func runApprovals(ctx context.Context, fs *flag.FlagSet, args []string) error {
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c := &ipc.Client{}
	defer c.Close()
	list, err := c.Approvals(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(list)
	}
	if len(list) == 0 {
		fmt.Println("no requests are waiting for approval")
		return nil
	}
	now := time.Now()
	for _, ap := range list {
		server := ap.Server
		if ap.Name != "" {
			server = ap.Name + " (" + ap.Server + ")"
		}
		fmt.Printf("%d  %s asks for %s", ap.ID, agent.Printable(ap.Caller.Describe()), agent.Printable(server))
		if len(ap.Scopes) > 0 {
			fmt.Printf(" scopes %s", strings.Join(ap.Scopes, " "))
		}
		fmt.Printf("  (%d waiting, %s left)\n", ap.Waiting, ap.Deadline.Sub(now).Round(time.Second))
		if len(ap.Caller.Cmdline) > 0 {
			fmt.Printf("   command: %s\n", agent.Printable(strings.Join(ap.Caller.Cmdline, " ")))
		}
		for _, p := range ap.Caller.Parents {
			fmt.Printf("   parent:  %s (pid %d)\n", agent.Printable(firstNonEmpty(strings.Join(p.Cmdline, " "), p.Exe, "?")), p.PID)
		}
		if ap.Via != "" {
			fmt.Printf("   allow:   only by entering your password in the %s dialog (approval = %q)\n", ap.Via, ap.Via)
		}
	}
	fmt.Println("\nanswer with: mcpkey approve <id> [--remember] or mcpkey deny <id>")
	return nil
}

func runApprove(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return answer(ctx, fs, args, true)
}

func runDeny(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return answer(ctx, fs, args, false)
}

func answer(ctx context.Context, fs *flag.FlagSet, args []string, allow bool) error {
	remember := fs.Bool("remember", false, "remember the answer for this program and server (config: remember, default 8h)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := strconv.Atoi(pos[0])
	if err != nil || id <= 0 {
		return usagef("%q is not an approval id (see mcpkey approvals)", pos[0])
	}
	d := agent.DecisionDeny
	if allow {
		d = agent.DecisionAllowOnce
		if *remember {
			d = agent.DecisionAllow
		}
	}
	c := &ipc.Client{}
	defer c.Close()
	if !allow {
		if err := c.AnswerApproval(ctx, id, d, *remember); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mcpkey: approval %d: %s\n", id, d)
		return nil
	}
	// Allowing needs a person: the agent writes the request and a code to
	// this process's terminal, and the code is read back from the terminal
	// itself (/dev/tty), never from stdin.
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("approve needs a terminal: %w\nhint: run it in a terminal, or answer in the tray (mcpkey tray)", err)
	}
	defer tty.Close()
	r, err := c.Answer(ctx, agent.Answer{ID: id, Decision: d, Remember: *remember})
	if err != nil {
		return err
	}
	if r.ConfirmInTerminal {
		line, err := bufio.NewReader(tty).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("approval %d: read the code from the terminal: %w", id, err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			return fmt.Errorf("approval %d: cancelled", id)
		}
		if _, err := c.Answer(ctx, agent.Answer{ID: id, Decision: d, Remember: *remember, Code: code}); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "mcpkey: approval %d: %s\n", id, d)
	return nil
}

func runLock(ctx context.Context, fs *flag.FlagSet, args []string) error {
	withPass := fs.Bool("passphrase", false, "require a passphrase to unlock (read from the terminal, or one line of stdin)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	var pass string
	if *withPass {
		var err error
		if pass, err = readPassphrase("lock passphrase", true); err != nil {
			return err
		}
	}
	c := &ipc.Client{}
	defer c.Close()
	if err := c.Lock(ctx, pass); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "mcpkey: agent locked; tokens dropped from memory until mcpkey unlock")
	return nil
}

func runUnlock(ctx context.Context, fs *flag.FlagSet, args []string) error {
	withPass := fs.Bool("passphrase", false, "the agent was locked with a passphrase: read it from the terminal, or one line of stdin")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	var pass string
	if *withPass {
		var err error
		if pass, err = readPassphrase("unlock passphrase", false); err != nil {
			return err
		}
	}
	c := &ipc.Client{}
	defer c.Close()
	if err := c.Unlock(ctx, pass); err != nil {
		if errors.Is(err, agent.ErrDenied) && !*withPass {
			return fmt.Errorf("%w\nhint: the agent was locked with a passphrase: mcpkey unlock --passphrase", err)
		}
		return err
	}
	fmt.Fprintln(os.Stderr, "mcpkey: agent unlocked")
	return nil
}

// readPassphrase reads a passphrase from the terminal without echo (twice
// when confirm is set), or one line of stdin when it is not a terminal.
// Never from argv.
func readPassphrase(prompt string, confirm bool) (string, error) {
	if !isTerminal(os.Stdin) {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read passphrase from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	p, err := promptPassphrase(prompt)
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", errors.New("empty passphrase")
	}
	if confirm {
		again, err := promptPassphrase("again")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("the passphrases differ")
		}
	}
	return p, nil
}

func runSocket(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return flag.ErrHelp
		}
		return usagef("missing subcommand: add, list or rm")
	}
	sub, args := args[0], args[1:]
	c := &ipc.Client{}
	defer c.Close()
	switch sub {
	case "add":
		servers := fs.String("servers", "", "comma-separated server names or URLs this socket may hand tokens for (required)")
		path := fs.String("path", "", "socket path (default: a new one next to the agent's socket)")
		ttl := fs.Duration("ttl", 0, "remove the socket after this long (default: when the agent stops)")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		var list []string
		for _, s := range strings.Split(*servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		if len(list) == 0 {
			return usagef("--servers is required")
		}
		rs, err := c.AddSocket(ctx, list, *path, *ttl)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(rs)
		}
		fmt.Println(rs.Path)
		fmt.Fprintf(os.Stderr, "mcpkey: forward it with: ssh -R /tmp/mcpkey-%d.sock:%s HOST\n", os.Getuid(), rs.Path)
		fmt.Fprintf(os.Stderr, "        and on HOST: export MCPKEY_SOCK=/tmp/mcpkey-%d.sock\n", os.Getuid())
		return nil
	case "list", "ls":
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		list, err := c.Sockets(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(list)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "PATH\tSERVERS\tEXPIRES\tFROM")
		for _, s := range list {
			exp, from := "with the agent", "socket add"
			if !s.ExpiresAt.IsZero() {
				exp = expiresIn(s.ExpiresAt, time.Now())
			}
			if s.FromConfig {
				from = "config"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Path, strings.Join(s.Servers, ","), exp, from)
		}
		return w.Flush()
	case "rm", "remove":
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		return c.RemoveSocket(ctx, pos[0])
	}
	return usagef("unknown subcommand %q: add, list or rm", sub)
}

func runLog(ctx context.Context, fs *flag.FlagSet, args []string) error {
	follow := fs.Bool("f", false, "follow: print records as they are written")
	only := fs.String("server", "", "only records for this server (name or URL)")
	asJSON := fs.Bool("json", false, "print the JSON lines as stored")
	path := fs.String("path", "", "audit log (default "+server.DefaultAuditPath()+")")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	p := firstNonEmpty(*path, server.DefaultAuditPath())
	want := ""
	if *only != "" {
		if strings.Contains(*only, "://") {
			want, _ = agent.CanonicalServerURL(*only)
		} else if s, err := agent.LoadSettings(defaultConfigPath()); err == nil {
			if ss, ok := s.Server(*only); ok {
				want, _ = agent.CanonicalServerURL(ss.URL)
			}
		}
		if want == "" {
			return usagef("--server: %q is neither a configured server nor a URL", *only)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	err := agent.ReadAudit(ctx, p, agent.AuditReadOptions{Follow: *follow}, func(r agent.AuditRecord, line []byte) error {
		if want != "" && r.Server != want {
			return nil
		}
		if *asJSON {
			out.Write(line)
			out.WriteByte('\n')
		} else {
			fmt.Fprintln(out, r.String())
		}
		if *follow {
			return out.Flush()
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no audit log at %s yet", p)
	}
	return err
}

const approvalsHelp = `With confirm = true in the config (or mcpkey agent --confirm), a program not
on the allow list that asks for a token waits while the agent asks you.
This lists those questions: the program's path, pid, command line and parent
chain, the server and the scopes. When that program is mcpkey itself (token,
bridge, exec), policy judges the program that ran it, its parent: allow rules
and remembered answers are about that program (its executable's file and
hash, and an interpreter's script), and deny rules match every program in the
chain. Requests the same program makes for the same server while it waits
share one approval. Unanswered approvals are denied after approval_timeout
(default 60s).

examples:
  mcpkey approvals
  mcpkey approve 3 --remember
  mcpkey deny 4
`

const approveHelp = `Answers a waiting approval (see mcpkey approvals). approve lets the waiting
requests through once; --remember also lets this program have tokens for this
server without asking for the configured remember time (default 8h). deny
refuses them; deny --remember refuses without asking for that time.
mcpkey lock forgets every remembered answer.

Only a person may approve: approve must run in a terminal that is not the
asking program's (not its session, process group or process tree). The agent
writes the request and a one-time code to that terminal; type the code to
allow. Programs without a terminal, WebSocket connections and the asking
program's own processes are refused; the tray answers without a code.

With approval = "polkit" in the config (top level or per server), approve
cannot allow at all, nor can the tray: the agent asks polkit itself, and only
your own password, typed in the dialog of the desktop's polkit authentication
agent, allows (remembered for the remember time); a wrong password or a
closed dialog denies. No polkit or no authentication agent refuses the
request with the reason, never falls back to the code. deny still works and
closes the dialog. The polkit action (dev.mcpkey.approve) comes with the
.deb/.rpm package; mcpkey install (per user) cannot install it.

examples:
  mcpkey approve 3
  mcpkey approve 3 --remember
  mcpkey deny 3 --remember
`

const lockHelp = `lock drops every token from the agent's memory, forgets remembered approvals
and refuses token, login and logout requests (exit code 5, wire code
"locked") until unlock, which reads the sessions back from the keyring.
With --passphrase, unlock requires it; the passphrase is read from the
terminal without echo (or one line of stdin), never from the command line.
Wrong passphrases are answered after 1s, 2s, 4s … (at most 30s), and no
passphrase is checked before that delay has passed, even if the guess before
it gave up early.
The config can lock on screen lock (lock_on_screen_lock = true) and after
idle time (lock_after_idle = "30m").

examples:
  mcpkey lock
  mcpkey lock --passphrase
  mcpkey unlock --passphrase
`

const socketHelp = `A restricted socket serves only agent.hello and token.get, and token.get only
for the listed servers: no login, logout, listing, approvals, events or admin.
It is made for forwarding to another machine, so programs there get
short-lived access tokens while refresh tokens stay here:

  mcpkey socket add --servers github,linear --ttl 8h
  ssh -R /tmp/mcpkey-$UID.sock:<printed path> devbox
  devbox$ export MCPKEY_SOCK=/tmp/mcpkey-$UID.sock; mcpkey token github

The config form is a [[restricted_socket]] table (path, servers, ttl).
Approvals (confirm) still apply; the caller is the local ssh client.

examples:
  mcpkey socket add --servers github --path /run/user/1000/mcpkey/devbox.sock
  mcpkey socket list
  mcpkey socket rm /run/user/1000/mcpkey/devbox.sock
`

const logHelp = `Shows the audit log: JSON lines under $XDG_STATE_HOME/mcpkey/audit.jsonl
(rotated at 10 MB, three old files kept), one per token issued (once per
program, server and token), refresh, login, logout, approval asked and
answered, denial, lock and unlock, with the time, server, account, scopes and
the caller's executable and pid. It never holds token material.

examples:
  mcpkey log
  mcpkey log -f --server github
  mcpkey log --json | jq 'select(.event == "denied")'
`
