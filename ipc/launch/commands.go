package launch

// The launchers' commands: bridge, exec, proxy, probe and config snippet.
// They are built like ipc/cli's commands (see its package doc); they live
// here because the launchers link the MCP SDK and the agent's types, which
// ipc/cli must not.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/safefile"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/cli"
)

// BridgeOptions is what `mcpkey bridge` was asked.
type BridgeOptions struct {
	Server, Account string
	LoginWait       time.Duration
}

// NewCmdBridge is `mcpkey bridge`; runF, when not nil, replaces BridgeRun.
func NewCmdBridge(f *cli.Factory, runF func(context.Context, *BridgeOptions) error) *cli.Command {
	return &cli.Command{Name: "bridge", Args: "<server> [flags]", Short: "be a stdio MCP server relaying to a remote one, with the agent's token", Long: bridgeHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &BridgeOptions{}
			fs.StringVar(&o.Account, "account", "", "account label, when a server has several sessions")
			fs.DurationVar(&o.LoginWait, "login-wait", 0, "how long to wait for a sign-in (default: the config's login_wait, 5m)")
			return cli.RunServer(ctx, fs, args, &o.Server, runF, o, withFactory(f, BridgeRun))
		}}
}

// withFactory is run with f: the default of cli.RunOr.
func withFactory[O any](f *cli.Factory, run func(context.Context, *cli.Factory, *O) error) func(context.Context, *O) error {
	return func(ctx context.Context, o *O) error { return run(ctx, f, o) }
}

// BridgeRun relays between the host on f's streams and the server.
func BridgeRun(ctx context.Context, f *cli.Factory, o *BridgeOptions) error {
	c := f.NewClient()
	defer c.Close()
	err := f.WithAgent(ctx, func() error { _, err := c.ResolveServer(ctx, o.Server); return err })
	if err != nil {
		return err
	}
	return Bridge(ctx, BridgeConfig{Client: c, Server: o.Server, Account: o.Account, LoginWait: o.LoginWait,
		In: f.IO.In, Out: f.IO.Out, Status: f.IO.ErrOut})
}

// ExecOptions is what `mcpkey exec` was asked.
type ExecOptions struct {
	Server  string // optional
	Account string
	Argv    []string // the command after --
}

// NewCmdExec is `mcpkey exec`; runF, when not nil, replaces ExecRun.
func NewCmdExec(f *cli.Factory, runF func(context.Context, *ExecOptions) error) *cli.Command {
	return &cli.Command{Name: "exec", Args: "[<server>] [flags] -- <command> [args]", Short: "run a command with tokens and secrets in its environment", Long: execHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &ExecOptions{}
			fs.StringVar(&o.Account, "account", "", "account label for the server's token")
			before := args
			if i := slices.Index(args, "--"); i >= 0 {
				before, o.Argv = args[:i], args[i+1:]
			}
			pos, err := cli.Parse(fs, before, 1) // <server> is optional
			if errors.Is(err, cli.ErrMissingServer) {
				pos, err = cli.Parse(fs, before, 0)
			}
			if err != nil {
				return err
			}
			if len(o.Argv) == 0 {
				return cli.Usagef("missing -- <command>")
			}
			if len(pos) == 1 {
				o.Server = pos[0]
			}
			return cli.RunOr(ctx, runF, o, withFactory(f, ExecRun))
		}}
}

// ExecRun resolves the environment and runs the command in it: on Unix it
// replaces this process; on Windows it exits with the command's code.
func ExecRun(ctx context.Context, f *cli.Factory, o *ExecOptions) error {
	c := f.NewClient()
	defer c.Close()
	cfg := ExecConfig{Client: c, Server: o.Server, Account: o.Account, Environ: os.Environ()}
	var env []string
	if err := f.WithAgent(ctx, func() (err error) { env, err = ExecEnv(ctx, cfg); return err }); err != nil {
		return err
	}
	c.Close()
	code, err := Exec(ctx, o.Argv, env) // on Unix, returns only on failure
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// ProxyOptions is what `mcpkey proxy` was asked.
type ProxyOptions struct {
	Listen         string // loopback host:port
	SecretFile     string
	Socket         string
	AllowedOrigins []string
}

// NewCmdProxy is `mcpkey proxy`; runF, when not nil, replaces ProxyRun.
func NewCmdProxy(f *cli.Factory, runF func(context.Context, *ProxyOptions) error) *cli.Command {
	return &cli.Command{Name: "proxy", Args: "[flags]", Short: "serve local HTTP MCP endpoints that add the agent's tokens", Long: proxyHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &ProxyOptions{}
			fs.StringVar(&o.Listen, "listen", "127.0.0.1:7391", "loopback address to listen on")
			fs.StringVar(&o.SecretFile, "secret-file", "", "write the per-launch secret to this file (0600) instead of printing it")
			fs.StringVar(&o.Socket, "socket", "", "also listen on this Unix socket (peer uid checked, no secret)")
			fs.Var((*cli.MultiFlag)(&o.AllowedOrigins), "allow-origin", "an Origin allowed to call the proxy (repeatable); others get 403")
			if _, err := cli.Parse(fs, args, 0); err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(o.Listen)
			if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
				return cli.Usagef("--listen %s: must be a loopback address such as 127.0.0.1:PORT", o.Listen)
			}
			return cli.RunOr(ctx, runF, o, withFactory(f, ProxyRun))
		}}
}

// ProxyRun serves the proxy until ctx ends. It prints the secret (or where
// it is) on stderr and one JSON line with the URL on stdout.
func ProxyRun(ctx context.Context, f *cli.Factory, o *ProxyOptions) error {
	c := f.NewClient()
	defer c.Close()
	if err := f.WithAgent(ctx, func() error { _, err := c.Hello(ctx); return err }); err != nil {
		return err
	}
	secret := NewSecret()
	p, err := NewProxy(ProxyConfig{Client: c, Secret: secret, AllowedOrigins: o.AllowedOrigins, Status: f.IO.ErrOut})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	info := map[string]string{"url": base}
	errc := make(chan error, 2)
	if o.Socket != "" {
		uln, err := ipc.Listen(o.Socket)
		if err != nil {
			ln.Close()
			return err
		}
		info["socket"] = o.Socket
		go func() { errc <- p.Serve(ctx, uln) }()
	}
	if o.SecretFile != "" {
		// Created exclusively, 0600; a file someone else made is refused.
		if err := safefile.WriteFile(o.SecretFile, []byte(secret+"\n"), 0); err != nil {
			ln.Close()
			return fmt.Errorf("write secret file: %w", err)
		}
		info["secret_file"] = o.SecretFile
		fmt.Fprintf(f.IO.ErrOut, "mcpkey proxy: the secret is in %s\n", o.SecretFile)
	} else {
		fmt.Fprintf(f.IO.ErrOut, "mcpkey proxy: secret (send as Authorization: Bearer; shown once): %s\n", secret)
	}
	fmt.Fprintf(f.IO.ErrOut, "mcpkey proxy: serving %s/<server>/mcp for every configured server\n", base)
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f.IO.Out, string(b)); err != nil {
		return err
	}
	go func() { errc <- p.Serve(ctx, ln) }()
	return <-errc
}

// ProbeCmdOptions is what `mcpkey probe` was asked.
type ProbeCmdOptions struct {
	Server, Account string
	JSON, NoLogin   bool
	Call            string
}

// NewCmdProbe is `mcpkey probe`; runF, when not nil, replaces ProbeRun.
func NewCmdProbe(f *cli.Factory, runF func(context.Context, *ProbeCmdOptions) error) *cli.Command {
	return &cli.Command{Name: "probe", Args: "<server> [flags]", Short: "connect to an MCP server with the agent's token and list its tools", Long: probeHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &ProbeCmdOptions{}
			fs.StringVar(&o.Account, "account", "", "account label")
			fs.BoolVar(&o.JSON, "json", false, "print JSON")
			fs.BoolVar(&o.NoLogin, "no-login", false, "fail instead of starting a login")
			fs.StringVar(&o.Call, "call", "", "also call this tool (with empty arguments) and print its result")
			return cli.RunServer(ctx, fs, args, &o.Server, runF, o, withFactory(f, ProbeRun))
		}}
}

// ProbeRun connects to the server, lists its tools and prints them.
func ProbeRun(ctx context.Context, f *cli.Factory, o *ProbeCmdOptions) error {
	c := f.NewClient()
	defer c.Close()
	doLogin := func(ctx context.Context, scopes []string) error {
		if o.NoLogin {
			return errors.New("login disabled by --no-login")
		}
		return f.Login(ctx, c, api.LoginRequest{Server: o.Server, Account: o.Account, Scopes: scopes})
	}
	var res *ProbeResult
	err := f.WithAgent(ctx, func() (err error) {
		res, err = Probe(ctx, c, ProbeOptions{Server: o.Server, Account: o.Account, Login: doLogin, Call: o.Call, Version: f.Version})
		return err
	})
	if err != nil {
		return err
	}
	if o.JSON {
		return cli.PrintJSON(f.IO.Out, res)
	}
	w := f.IO.Out
	fmt.Fprintf(w, "server:   %s\n", res.Server)
	fmt.Fprintf(w, "name:     %s\n", res.Name)
	fmt.Fprintf(w, "version:  %s\n", res.Version)
	fmt.Fprintf(w, "protocol: %s\n", res.ProtocolVersion)
	fmt.Fprintf(w, "tools:    %d\n", len(res.Tools))
	for _, t := range res.Tools {
		fmt.Fprintf(w, "  %s\n", t)
	}
	if res.Called != "" {
		fmt.Fprintf(w, "called:   %s\n%s\n", res.Called, res.CallResult)
	}
	return nil
}

// ConfigOptions is what `mcpkey config snippet` was asked.
type ConfigOptions struct {
	Host, Server string
	ProxyURL     string
	JSON         bool
	Name         string
}

// NewCmdConfig is `mcpkey config snippet`; runF, when not nil, replaces
// ConfigRun.
func NewCmdConfig(f *cli.Factory, runF func(context.Context, *ConfigOptions) error) *cli.Command {
	return &cli.Command{Name: "config", Args: "snippet <host> <server> [flags]", Short: "print an MCP host's configuration for a server", Long: configHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &ConfigOptions{}
			fs.StringVar(&o.ProxyURL, "proxy", "", "mcpkey proxy's URL (http://127.0.0.1:PORT): hosts that speak HTTP use it instead of the bridge")
			fs.BoolVar(&o.JSON, "json", false, "print the snippet and where it goes as JSON")
			fs.StringVar(&o.Name, "name", "", "the name the host lists the server under (letters, digits, - and _; default derived from <server>)")
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				if _, err := cli.Parse(fs, args, 0); err != nil {
					return err
				}
				return cli.Usagef("missing subcommand: snippet")
			}
			if args[0] != "snippet" {
				return cli.Usagef("unknown subcommand %q: snippet", args[0])
			}
			pos, err := cli.Parse(fs, args[1:], 2)
			if err != nil {
				return err
			}
			o.Host, o.Server = pos[0], pos[1]
			return cli.RunOr(ctx, runF, o, withFactory(f, ConfigRun))
		}}
}

// ConfigRun prints the host's snippet on stdout and where it goes on
// stderr.
func ConfigRun(ctx context.Context, f *cli.Factory, o *ConfigOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the mcpkey binary: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	// Hosts strip the environment: name the socket when they would miss it.
	sock, err := ipc.HostSocketEnv()
	if err != nil {
		return err
	}
	s, err := Snippet(o.Host, o.Server, SnippetOptions{Exe: exe, ProxyURL: o.ProxyURL, Name: o.Name, Socket: sock})
	if err != nil {
		return cli.UsageError{Msg: err.Error()}
	}
	if o.JSON {
		return cli.PrintJSON(f.IO.Out, s)
	}
	fmt.Fprintf(f.IO.ErrOut, "mcpkey: %s via mcpkey %s; %s:\n", s.Host, s.Via, s.Where)
	if sock != "" && s.Via == "bridge" {
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: it sets MCPKEY_SOCK=%s: the host starts the bridge without your XDG_RUNTIME_DIR and MCPKEY_SOCK, and would not find the agent there\n", sock)
	}
	_, err = fmt.Fprint(f.IO.Out, strings.TrimRight(s.Text, "\n")+"\n")
	return err
}

const bridgeHelp = `A stdio MCP server for hosts that launch only stdio servers (Claude Desktop and
others): it relays every message, uninterpreted, between the host and the remote
server over Streamable HTTP (or the older HTTP+SSE transport), with a token from
the agent on every request. On a 401 the agent refreshes (once for all bridges;
a server that rejects freshly issued tokens gets one extra sign-in, then an
error naming the audience); when a sign-in is needed one browser tab opens,
initialize waits for it (--login-wait), and other requests are answered with an
error saying what to do until it is done. Servers with [servers.NAME.headers] in
the config get those headers (API keys from 'mcpkey secret') instead of OAuth.

The bridge never writes a token to disk, argv, its environment or its logs;
its stderr lines ("mcpkey bridge: ...") show in the host's MCP log. It exits
when the host closes stdin.

examples:
  mcpkey bridge github
  mcpkey bridge https://mcp.example.com/mcp --login-wait 2m
  mcpkey config snippet claude-desktop github
`
const execHelp = `Runs a command (a stdio MCP server, a script) with secrets in its environment
only, as 'op run' does. The server's [servers.NAME.env] table maps variables to
"token" (its access token) or "secret:NAME" (a stored secret), and variables in
your environment may hold references:

  VAR=mcpkey://NAME          the access token of the configured server NAME
  VAR=mcpkey://secret/NAME   the stored secret NAME

If any secret is missing nothing is started and the exit code is 1 (3 when a
sign-in is needed). On Unix the command replaces mcpkey (exec); on Windows
mcpkey waits and returns its exit code.

A token in an environment is not refreshed while the command runs: it stops
working when it expires (often within an hour). For HTTP servers use
'mcpkey bridge' or 'mcpkey proxy', which fetch a fresh token per request.

examples:
  mcpkey exec github -- npx -y @modelcontextprotocol/server-github
  GITHUB_TOKEN=mcpkey://secret/gh-pat mcpkey exec -- ./server
  mcpkey exec work --account alice -- env
`
const proxyHelp = `Serves http://127.0.0.1:PORT/<server>/mcp for every configured server: a local
Streamable HTTP endpoint that forwards to the server with the agent's token
added, for hosts that speak HTTP MCP but must never hold a token. Clients
present the per-launch secret as "Authorization: Bearer SECRET" (printed once
on stderr, or written to --secret-file with mode 0600); requests without it get
401, with a foreign Origin 403, with a Host other than the listener 421. With
--socket, clients of the Unix socket are checked by user id instead.

The first stdout line is JSON: {"url": "http://127.0.0.1:PORT", ...}.

examples:
  mcpkey proxy
  mcpkey proxy --listen 127.0.0.1:9000 --secret-file ~/.config/mcpkey/proxy.secret
  mcpkey config snippet vscode github --proxy http://127.0.0.1:7391
`
const probeHelp = `Checks a server end to end: connects over Streamable HTTP with a token from the
agent (signing in if needed, refreshing on 401, stepping up on 403
insufficient_scope), initializes, lists the tools, and prints the server's name,
version and tool names. A server that rejects freshly issued tokens gets one
extra sign-in, then the error says its audience may not match (see
resource_as_audience in the README).

examples:
  mcpkey probe https://mcp.example.com/mcp
  mcpkey probe github --json
  mcpkey probe https://mcp.example.com/mcp --call whoami
`
const configHelp = `'mcpkey config snippet <host> <server>' prints the block that makes an MCP host
use <server> through mcpkey, for claude-desktop, claude-code, cursor and
vscode. It uses the bridge (the host launches this mcpkey binary over stdio),
or with --proxy the proxy's HTTP endpoint where the host speaks HTTP (Claude
Desktop's config does not). Where it goes is printed on stderr.

The host lists the server under a name made of letters, digits, - and _
(hosts refuse others): --name, else derived from <server> (a URL gives its host
and path: https://mcp.example.com/mcp is mcp-example-com-mcp). Hosts launch
stdio servers with a stripped environment (HOME, PATH, USER and a few more; no
XDG_RUNTIME_DIR or MCPKEY_SOCK): when the agent's socket is not where such an
environment finds it, the snippet sets MCPKEY_SOCK for the bridge.

examples:
  mcpkey config snippet claude-desktop github
  mcpkey config snippet claude-code github
  mcpkey config snippet claude-code https://mcp.example.com/mcp --name example
  mcpkey config snippet vscode github --proxy http://127.0.0.1:7391
`
