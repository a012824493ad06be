package cli

// The access-control commands: approvals, approve, deny, lock, unlock.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/api"
)

// NewCmdApprovals is `mcpkey approvals`; runF, when not nil, replaces
// ApprovalsRun.
func NewCmdApprovals(f *Factory, runF func(context.Context, *JSONOptions) error) *Command {
	return jsonCommand("approvals", "", "list the token requests waiting for your approval", approvalsHelp, func(ctx context.Context, o *JSONOptions) error {
		return RunOr(ctx, runF, o, f.ApprovalsRun)
	})
}

// ApprovalsRun lists the waiting approvals with the program that asks.
func (f *Factory) ApprovalsRun(ctx context.Context, o *JSONOptions) error {
	c := f.NewClient()
	defer c.Close()
	list, err := c.Approvals(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		return PrintJSON(f.IO.Out, list)
	}
	out := f.IO.Out
	if len(list) == 0 {
		fmt.Fprintln(out, "no requests are waiting for approval")
		return nil
	}
	now := time.Now()
	for _, ap := range list {
		server := ap.Server
		if ap.Name != "" {
			server = ap.Name + " (" + ap.Server + ")"
		}
		fmt.Fprintf(out, "%d  %s asks for %s", ap.ID, api.Printable(ap.Caller.Describe()), api.Printable(server))
		if len(ap.Scopes) > 0 {
			fmt.Fprintf(out, " scopes %s", strings.Join(ap.Scopes, " "))
		}
		fmt.Fprintf(out, "  (%d waiting, %s left)\n", ap.Waiting, ap.Deadline.Sub(now).Round(time.Second))
		if len(ap.Caller.Cmdline) > 0 {
			fmt.Fprintf(out, "   command: %s\n", api.Printable(strings.Join(ap.Caller.Cmdline, " ")))
		}
		for _, p := range ap.Caller.Parents {
			fmt.Fprintf(out, "   parent:  %s (pid %d)\n", api.Printable(cmp.Or(strings.Join(p.Cmdline, " "), p.Exe, "?")), p.PID)
		}
		if ap.Via != "" {
			fmt.Fprintf(out, "   allow:   only by entering your password in the %s dialog (approval = %q)\n", ap.Via, ap.Via)
		}
	}
	fmt.Fprintln(out, "\nanswer with: mcpkey approve <id> [--remember] or mcpkey deny <id>")
	return nil
}

// AnswerOptions is what `mcpkey approve` or `mcpkey deny` was asked.
type AnswerOptions struct {
	ID       int
	Allow    bool // approve, not deny
	Remember bool
}

// NewCmdApprove is `mcpkey approve`; runF, when not nil, replaces AnswerRun.
func NewCmdApprove(f *Factory, runF func(context.Context, *AnswerOptions) error) *Command {
	return answerCommand(f, "approve", "let a waiting program have its token", true, runF)
}

// NewCmdDeny is `mcpkey deny`; runF, when not nil, replaces AnswerRun.
func NewCmdDeny(f *Factory, runF func(context.Context, *AnswerOptions) error) *Command {
	return answerCommand(f, "deny", "refuse a waiting program its token", false, runF)
}

func answerCommand(f *Factory, name, short string, allow bool, runF func(context.Context, *AnswerOptions) error) *Command {
	return &Command{Name: name, Args: "<id> [--remember]", Short: short, Long: approveHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &AnswerOptions{Allow: allow}
			fs.BoolVar(&o.Remember, "remember", false, "remember the answer for this program and server (config: remember, default 8h)")
			pos, err := Parse(fs, args, 1)
			if err != nil {
				return err
			}
			if o.ID, err = strconv.Atoi(pos[0]); err != nil || o.ID <= 0 {
				return Usagef("%q is not an approval id (see mcpkey approvals)", pos[0])
			}
			return RunOr(ctx, runF, o, f.AnswerRun)
		}}
}

// AnswerRun answers an approval. Allowing needs a person: the agent writes
// the request and a code to this process's terminal, and the code is read
// back from the terminal itself (/dev/tty), never from stdin.
func (f *Factory) AnswerRun(ctx context.Context, o *AnswerOptions) error {
	d := api.DecisionDeny
	if o.Allow {
		d = api.DecisionAllowOnce
		if o.Remember {
			d = api.DecisionAllow
		}
	}
	c := f.NewClient()
	defer c.Close()
	if !o.Allow {
		if err := c.AnswerApproval(ctx, o.ID, d, o.Remember); err != nil {
			return err
		}
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: approval %d: %s\n", o.ID, d)
		return nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("approve needs a terminal: %w\nhint: run it in a terminal, or answer in the tray (mcpkey tray)", err)
	}
	defer tty.Close()
	r, err := c.Answer(ctx, api.Answer{ID: o.ID, Decision: d, Remember: o.Remember})
	if err != nil {
		return err
	}
	if r.ConfirmInTerminal {
		line, err := bufio.NewReader(tty).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("approval %d: read the code from the terminal: %w", o.ID, err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			return fmt.Errorf("approval %d: cancelled", o.ID)
		}
		if _, err := c.Answer(ctx, api.Answer{ID: o.ID, Decision: d, Remember: o.Remember, Code: code}); err != nil {
			return err
		}
	}
	fmt.Fprintf(f.IO.ErrOut, "mcpkey: approval %d: %s\n", o.ID, d)
	return nil
}

// LockOptions is what `mcpkey lock` or `mcpkey unlock` was asked.
type LockOptions struct {
	Unlock     bool
	Passphrase bool // read a passphrase (never from argv)
}

// NewCmdLock is `mcpkey lock`; runF, when not nil, replaces LockRun.
func NewCmdLock(f *Factory, runF func(context.Context, *LockOptions) error) *Command {
	return lockCommand(f, "lock", "lock the agent: drop tokens from memory, refuse every request",
		"require a passphrase to unlock (read from the terminal, or one line of stdin)", false, runF)
}

// NewCmdUnlock is `mcpkey unlock`; runF, when not nil, replaces LockRun.
func NewCmdUnlock(f *Factory, runF func(context.Context, *LockOptions) error) *Command {
	return lockCommand(f, "unlock", "unlock the agent",
		"the agent was locked with a passphrase: read it from the terminal, or one line of stdin", true, runF)
}

func lockCommand(f *Factory, name, short, passUsage string, unlock bool, runF func(context.Context, *LockOptions) error) *Command {
	return &Command{Name: name, Args: "[--passphrase]", Short: short, Long: lockHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &LockOptions{Unlock: unlock}
			fs.BoolVar(&o.Passphrase, "passphrase", false, passUsage)
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			return RunOr(ctx, runF, o, f.LockRun)
		}}
}

// LockRun locks or unlocks the agent.
func (f *Factory) LockRun(ctx context.Context, o *LockOptions) error {
	var pass string
	if o.Passphrase {
		prompt := "lock passphrase"
		if o.Unlock {
			prompt = "unlock passphrase"
		}
		var err error
		if pass, err = f.readPassphrase(prompt, !o.Unlock); err != nil {
			return err
		}
	}
	c := f.NewClient()
	defer c.Close()
	if !o.Unlock {
		if err := c.Lock(ctx, pass); err != nil {
			return err
		}
		fmt.Fprintln(f.IO.ErrOut, "mcpkey: agent locked; tokens dropped from memory until mcpkey unlock")
		return nil
	}
	if err := c.Unlock(ctx, pass); err != nil {
		if errors.Is(err, api.ErrDenied) && !o.Passphrase {
			return fmt.Errorf("%w\nhint: the agent was locked with a passphrase: mcpkey unlock --passphrase", err)
		}
		return err
	}
	fmt.Fprintln(f.IO.ErrOut, "mcpkey: agent unlocked")
	return nil
}

// readPassphrase reads a passphrase from the terminal without echo (twice
// when confirm is set), or one line of stdin when it is not a terminal.
// Never from argv.
func (f *Factory) readPassphrase(prompt string, confirm bool) (string, error) {
	if !f.IO.InTerminal() {
		line, err := bufio.NewReader(f.IO.In).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read passphrase from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	p, err := PromptPassphrase(prompt)
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", errors.New("empty passphrase")
	}
	if confirm {
		again, err := PromptPassphrase("again")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("the passphrases differ")
		}
	}
	return p, nil
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
