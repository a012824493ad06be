package cli

// `mcpkey socket`: restricted sockets for forwarding (ssh -R).

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// SocketOptions is what `mcpkey socket` was asked.
type SocketOptions struct {
	Sub     string // add, list or rm
	Servers []string
	Path    string // add: the new socket's path ("" next to the agent's); rm: the socket
	TTL     time.Duration
	JSON    bool
}

// NewCmdSocket is `mcpkey socket add|list|rm`; runF, when not nil, replaces
// SocketRun.
func NewCmdSocket(f *Factory, runF func(context.Context, *SocketOptions) error) *Command {
	return &Command{Name: "socket", Args: "add|list|rm [flags]", Short: "restricted sockets for forwarding to other machines (ssh -R)", Long: socketHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
					return flag.ErrHelp
				}
				return Usagef("missing subcommand: add, list or rm")
			}
			o := &SocketOptions{Sub: args[0]}
			args = args[1:]
			switch o.Sub {
			case "add":
				servers := fs.String("servers", "", "comma-separated server names or URLs this socket may hand tokens for (required)")
				fs.StringVar(&o.Path, "path", "", "socket path (default: a new one next to the agent's socket)")
				fs.DurationVar(&o.TTL, "ttl", 0, "remove the socket after this long (default: when the agent stops)")
				fs.BoolVar(&o.JSON, "json", false, "print JSON")
				if _, err := Parse(fs, args, 0); err != nil {
					return err
				}
				for _, s := range strings.Split(*servers, ",") {
					if s = strings.TrimSpace(s); s != "" {
						o.Servers = append(o.Servers, s)
					}
				}
				if len(o.Servers) == 0 {
					return Usagef("--servers is required")
				}
			case "list", "ls":
				o.Sub = "list"
				fs.BoolVar(&o.JSON, "json", false, "print JSON")
				if _, err := Parse(fs, args, 0); err != nil {
					return err
				}
			case "rm", "remove":
				o.Sub = "rm"
				pos, err := Parse(fs, args, 1)
				if err != nil {
					return err
				}
				o.Path = pos[0]
			default:
				return Usagef("unknown subcommand %q: add, list or rm", o.Sub)
			}
			return RunOr(ctx, runF, o, f.SocketRun)
		}}
}

// SocketRun adds, lists or removes restricted sockets.
func (f *Factory) SocketRun(ctx context.Context, o *SocketOptions) error {
	c := f.NewClient()
	defer c.Close()
	switch o.Sub {
	case "add":
		rs, err := c.AddSocket(ctx, o.Servers, o.Path, o.TTL)
		if err != nil {
			return err
		}
		if o.JSON {
			return PrintJSON(f.IO.Out, rs)
		}
		fmt.Fprintln(f.IO.Out, rs.Path)
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: forward it with: ssh -R /tmp/mcpkey-%d.sock:%s HOST\n", os.Getuid(), rs.Path)
		fmt.Fprintf(f.IO.ErrOut, "        and on HOST: export MCPKEY_SOCK=/tmp/mcpkey-%d.sock\n", os.Getuid())
		return nil
	case "list":
		list, err := c.Sockets(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			return PrintJSON(f.IO.Out, list)
		}
		w := tabwriter.NewWriter(f.IO.Out, 0, 0, 2, ' ', 0)
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
	case "rm":
		return c.RemoveSocket(ctx, o.Path)
	}
	return Usagef("unknown subcommand %q: add, list or rm", o.Sub)
}

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
