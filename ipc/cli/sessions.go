package cli

// The session commands: login, token, list, status, logout.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/safefile"
	"github.com/mcpkey/mcpkey/ipc"
)

// LoginOptions is what `mcpkey login` was asked.
type LoginOptions struct {
	Server, Account   string
	Scopes            []string
	NoBrowser         bool
	ClientID          string
	ClientSecretFile  string
	ClientMetadataURL string
	// DPoP (--dpop[=false]) decides key-bound tokens for this login; nil:
	// as the server asks and the config says.
	DPoP *bool
	// Grant (--grant) signs in without a browser, with the key, workload
	// token file or identity provider its flags name (see LoginGrant).
	Grant, ClientKeyFile, ClientKeyAlg, AssertionFile, IdP string
}

// NewCmdLogin is `mcpkey login`; runF, when not nil, replaces LoginRun.
func NewCmdLogin(f *Factory, runF func(context.Context, *LoginOptions) error) *Command {
	return &Command{Name: "login", Args: "<server> [flags]", Short: "sign in to an MCP server (OAuth, in your browser)", Long: loginHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &LoginOptions{}
			fs.Var((*MultiFlag)(&o.Scopes), "scope", "scope to request (repeatable); adds to what the session has (step-up)")
			fs.StringVar(&o.Account, "account", "", "account label, to keep several sessions for one server")
			fs.BoolVar(&o.NoBrowser, "no-browser", false, "do not open a browser: print the URL (and a device code when offered) and accept the pasted redirect URL on stdin")
			fs.StringVar(&o.ClientID, "client-id", "", "a pre-registered OAuth client id")
			fs.StringVar(&o.ClientSecretFile, "client-secret-file", "", "file holding the pre-registered client's secret (never pass secrets in argv)")
			fs.StringVar(&o.ClientMetadataURL, "client-metadata-url", "", "https URL of a Client ID Metadata Document to use as client id")
			fs.BoolFunc("dpop", "ask for tokens bound to a key only the agent holds (DPoP); --dpop=false: bearer tokens (default: as the server asks and the config says)", func(v string) error {
				b, err := strconv.ParseBool(v)
				o.DPoP = &b
				return err
			})
			fs.StringVar(&o.Grant, "grant", "", "sign in without a browser: client_credentials, jwt_bearer (workload identity) or enterprise")
			fs.StringVar(&o.ClientKeyFile, "client-key-file", "", "PEM private key of a private_key_jwt client (--grant client_credentials)")
			fs.StringVar(&o.ClientKeyAlg, "client-key-alg", "", "JWS algorithm of --client-key-file (default: from the key)")
			fs.StringVar(&o.AssertionFile, "assertion-file", "", "file holding the workload's token (--grant jwt_bearer); read again at every renewal")
			fs.StringVar(&o.IdP, "idp", "", "configured identity provider ([idps.NAME]) whose sign-in --grant enterprise exchanges")
			return RunServer(ctx, fs, args, &o.Server, runF, o, f.LoginRun)
		}}
}

// RunOr runs runF, or def when runF is nil.
func RunOr[O any](ctx context.Context, runF func(context.Context, *O) error, o *O, def func(context.Context, *O) error) error {
	if runF != nil {
		return runF(ctx, o)
	}
	return def(ctx, o)
}

// RunServer parses args, whose one argument is <server>, into *server and
// runs runF, or def when runF is nil: the end of most commands' Run.
func RunServer[O any](ctx context.Context, fs *flag.FlagSet, args []string, server *string, runF func(context.Context, *O) error, o *O, def func(context.Context, *O) error) error {
	pos, err := Parse(fs, args, 1)
	if err != nil {
		return err
	}
	*server = pos[0]
	return RunOr(ctx, runF, o, def)
}

// LoginRun signs in through the agent.
func (f *Factory) LoginRun(ctx context.Context, o *LoginOptions) error {
	req := api.LoginRequest{Server: o.Server, Account: o.Account, Scopes: o.Scopes, NoBrowser: o.NoBrowser, ClientID: o.ClientID, ClientMetadataURL: o.ClientMetadataURL, DPoP: o.DPoP}
	var err error
	if req.Grant, err = LoginGrant(o.Grant, o.ClientKeyFile, o.ClientKeyAlg, o.AssertionFile, o.IdP); err != nil {
		return err
	}
	if o.ClientSecretFile != "" {
		if req.ClientSecret, err = safefile.ReadSecret(o.ClientSecretFile); err != nil {
			return err
		}
	}
	c := f.NewClient()
	defer c.Close()
	return f.WithAgent(ctx, func() error { return f.Login(ctx, c, req) })
}

// Login runs a login through the agent on c, printing its progress on
// stderr; with req.NoBrowser, lines typed on stdin are pasted redirect URLs.
func (f *Factory) Login(ctx context.Context, c *ipc.Client, req api.LoginRequest) error {
	if req.NoBrowser {
		go f.pasteRedirects(ctx, c, f.IO.In)
	}
	_, err := c.Login(ctx, req, func(e api.Event) {
		if e.Message != "" {
			fmt.Fprintf(f.IO.ErrOut, "mcpkey: %s\n", e.Message)
		}
		if e.URL != "" && (req.NoBrowser || e.ShowURL) {
			fmt.Fprintf(f.IO.ErrOut, "\n    %s\n\n", e.URL)
		}
	})
	if errors.Is(err, context.Canceled) {
		return errors.New("login cancelled")
	}
	return err
}

// pasteRedirects hands every line typed on r to the agent as a redirect URL.
func (f *Factory) pasteRedirects(ctx context.Context, c *ipc.Client, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() && ctx.Err() == nil {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := c.CompleteLogin(ctx, line); err != nil {
			fmt.Fprintf(f.IO.ErrOut, "mcpkey: %s\n", err)
		}
	}
	if err := sc.Err(); err != nil { // a line over 64 KiB is no redirect URL
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: read pasted redirect URL: %v\n", err)
	}
}

// TokenOptions is what `mcpkey token` was asked.
type TokenOptions struct {
	Server, Account string
	Scopes          []string
	MinTTL          time.Duration
	JSON            bool
	// DPoPMethod and DPoPURL (--dpop METHOD, the URL after the server)
	// name one request of a key-bound session: the header lines for it
	// are printed.
	DPoPMethod, DPoPURL string
}

// NewCmdToken is `mcpkey token`; runF, when not nil, replaces TokenRun.
func NewCmdToken(f *Factory, runF func(context.Context, *TokenOptions) error) *Command {
	return &Command{Name: "token", Args: "<server> [flags]", Short: "print an access token for a server (for scripts)", Long: tokenHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &TokenOptions{}
			fs.Var((*MultiFlag)(&o.Scopes), "scope", "a scope the token must carry (repeatable)")
			fs.StringVar(&o.Account, "account", "", "account label, when a server has several sessions")
			fs.DurationVar(&o.MinTTL, "min-ttl", 0, "least remaining lifetime accepted (refresh first otherwise)")
			fs.BoolVar(&o.JSON, "json", false, "print the token and its metadata as JSON")
			fs.StringVar(&o.DPoPMethod, "dpop", "", "`METHOD` of the request (the URL follows the server): print its Authorization and DPoP headers (for key-bound sessions)")
			npos := 1
			if slices.ContainsFunc(args, func(a string) bool {
				a = strings.TrimPrefix(a, "-")
				return a == "-dpop" || a == "dpop" || strings.HasPrefix(a, "-dpop=") || strings.HasPrefix(a, "dpop=")
			}) {
				npos = 2
			}
			pos, err := Parse(fs, args, npos)
			if errors.Is(err, ErrMissingServer) && npos == 2 {
				return Usagef("--dpop METHOD takes the request's URL after the server: mcpkey token SERVER --dpop METHOD URL")
			}
			if err != nil {
				return err
			}
			o.Server = pos[0]
			if o.DPoPMethod != "" {
				o.DPoPURL = pos[1]
			}
			return RunOr(ctx, runF, o, f.TokenRun)
		}}
}

// TokenRun prints the access token (or, with JSON, the token and its
// metadata) on stdout.
func (f *Factory) TokenRun(ctx context.Context, o *TokenOptions) error {
	tok, err := ask(ctx, f, func(c *ipc.Client) (api.Token, error) {
		return c.Token(ctx, api.TokenRequest{Server: o.Server, Account: o.Account, Scopes: o.Scopes, MinTTL: o.MinTTL,
			DPoPMethod: o.DPoPMethod, DPoPURL: o.DPoPURL})
	})
	if err != nil {
		return err
	}
	if o.JSON {
		return PrintJSON(f.IO.Out, tok)
	}
	if o.DPoPMethod != "" {
		lines, err := ipc.HeaderLines(tok, o.DPoPMethod, o.DPoPURL)
		if err == nil {
			_, err = fmt.Fprint(f.IO.Out, lines)
		}
		return err
	}
	_, err = fmt.Fprintln(f.IO.Out, tok.AccessToken)
	return err
}

// JSONOptions is what a command whose only flag is --json was asked.
type JSONOptions struct{ JSON bool }

// jsonCommand is a command with no arguments and one flag, --json.
func jsonCommand(name, aliases, short, long string, runF func(context.Context, *JSONOptions) error) *Command {
	return &Command{Name: name, Aliases: aliases, Args: "[--json]", Short: short, Long: long,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &JSONOptions{}
			fs.BoolVar(&o.JSON, "json", false, "print JSON")
			if _, err := Parse(fs, args, 0); err != nil {
				return err
			}
			return runF(ctx, o)
		}}
}

// NewCmdList is `mcpkey list`; runF, when not nil, replaces ListRun.
func NewCmdList(f *Factory, runF func(context.Context, *JSONOptions) error) *Command {
	return jsonCommand("list", "ls", "list sessions", listHelp, func(ctx context.Context, o *JSONOptions) error {
		return RunOr(ctx, runF, o, f.ListRun)
	})
}

// ListRun prints the agent's sessions as a table (or JSON).
func (f *Factory) ListRun(ctx context.Context, o *JSONOptions) error {
	ss, err := ask(ctx, f, func(c *ipc.Client) ([]api.SessionInfo, error) { return c.Sessions(ctx) })
	if err != nil {
		return err
	}
	if o.JSON {
		if ss == nil {
			ss = []api.SessionInfo{}
		}
		return PrintJSON(f.IO.Out, ss)
	}
	if len(ss) == 0 {
		fmt.Fprintln(f.IO.ErrOut, "mcpkey: no sessions; sign in with: mcpkey login <server>")
		return nil
	}
	w := tabwriter.NewWriter(f.IO.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tNAME\tACCOUNT\tGRANT\tSTATE\tEXPIRES\tSCOPES")
	now := time.Now()
	var broken []api.SessionInfo
	for _, s := range ss {
		state := string(s.State)
		if s.State == api.StateReady {
			state = "valid"
		}
		if s.DPoP {
			state += ", key-bound" // DPoP: its tokens need the agent's proofs
		}
		server := s.Server
		if s.State == api.StateBroken {
			broken = append(broken, s)
			if server == "" {
				server = "(unreadable) " + s.ID
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", server, cmp.Or(s.Name, "-"), cmp.Or(s.Account, "-"), api.GrantLabel(s.Grant), state,
			expiresIn(s.ExpiresAt, now), cmp.Or(strings.Join(s.Scopes, " "), "-"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range broken {
		fmt.Fprintf(f.IO.ErrOut, "mcpkey: %s\n", s.Error)
	}
	return nil
}

func expiresIn(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case t.IsZero():
		return "no expiry given"
	case d <= 0:
		return "expired"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("in %dm", int(d.Minutes()))
	default:
		return fmt.Sprintf("in %dh", int(d.Hours()))
	}
}

// NewCmdStatus is `mcpkey status`; runF, when not nil, replaces StatusRun.
func NewCmdStatus(f *Factory, runF func(context.Context, *JSONOptions) error) *Command {
	return jsonCommand("status", "", "show the agent's state", statusHelp, func(ctx context.Context, o *JSONOptions) error {
		return RunOr(ctx, runF, o, f.StatusRun)
	})
}

// StatusRun prints the agent's state.
func (f *Factory) StatusRun(ctx context.Context, o *JSONOptions) error {
	st, err := ask(ctx, f, func(c *ipc.Client) (api.Status, error) { return c.Status(ctx) })
	if err != nil {
		return err
	}
	if o.JSON {
		return PrintJSON(f.IO.Out, st)
	}
	w := tabwriter.NewWriter(f.IO.Out, 0, 0, 2, ' ', 0)
	up := time.Since(st.Started).Round(time.Second)
	fmt.Fprintf(w, "agent:\trunning (pid %d, version %s, up %s)\n", st.PID, st.Version, up)
	fmt.Fprintf(w, "socket:\t%s\n", st.Socket)
	if st.WebSocketURL != "" {
		fmt.Fprintf(w, "websocket:\t%s\n", st.WebSocketURL)
	}
	fmt.Fprintf(w, "storage:\t%s\n", st.StoreBackend)
	if st.StoreNotice != "" {
		fmt.Fprintf(w, "\t(%s)\n", st.StoreNotice)
	}
	if st.StoreUsage != "" {
		fmt.Fprintf(w, "quota:\t%s\n", st.StoreUsage)
	}
	lock := "unlocked"
	if st.Locked {
		lock = "locked"
	}
	fmt.Fprintf(w, "state:\t%s\n", lock)
	fmt.Fprintf(w, "sessions:\t%d (%d need login", st.Sessions, st.NeedsLogin)
	if st.Broken > 0 {
		fmt.Fprintf(w, ", %d broken", st.Broken)
	}
	if st.Loading > 0 {
		fmt.Fprintf(w, ", %d not read yet", st.Loading)
	}
	if st.KeyBound > 0 {
		fmt.Fprintf(w, ", %d key-bound", st.KeyBound)
	}
	fmt.Fprintln(w, ")")
	if len(st.Grants) > 0 {
		fmt.Fprintf(w, "grants:\t%s\n", api.GrantCounts(st.Grants))
	}
	if st.PendingLogins > 0 {
		fmt.Fprintf(w, "logins:\t%d in progress\n", st.PendingLogins)
	}
	fmt.Fprintf(w, "config:\t%s\n", cmp.Or(st.ConfigPath, "-"))
	if st.ConfigError != "" {
		fmt.Fprintf(w, "config error:\t%s\n", st.ConfigError)
	}
	return w.Flush()
}

// LogoutOptions is what `mcpkey logout` was asked.
type LogoutOptions struct {
	Server, Account          string
	KeepRemote, ForgetClient bool
	ForgetIdP                bool
	JSON                     bool
}

// NewCmdLogout is `mcpkey logout`; runF, when not nil, replaces LogoutRun.
func NewCmdLogout(f *Factory, runF func(context.Context, *LogoutOptions) error) *Command {
	return &Command{Name: "logout", Args: "<server> [flags]", Short: "remove a session and revoke it at the authorization server", Long: logoutHelp,
		Run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			o := &LogoutOptions{}
			fs.StringVar(&o.Account, "account", "", "account label")
			fs.BoolVar(&o.KeepRemote, "keep-remote", false, "do not revoke the refresh token at the authorization server")
			fs.BoolVar(&o.ForgetClient, "forget-client", false, "also drop the client registration stored for the server's authorization server; the next login registers again")
			fs.BoolVar(&o.ForgetIdP, "forget-idp", false, "also drop the sign-in at the identity provider of an enterprise session (its servers need the browser sign-in again)")
			fs.BoolVar(&o.JSON, "json", false, "print JSON")
			return RunServer(ctx, fs, args, &o.Server, runF, o, f.LogoutRun)
		}}
}

// LogoutRun removes the session and says whether it was revoked.
func (f *Factory) LogoutRun(ctx context.Context, o *LogoutOptions) error {
	res, err := ask(ctx, f, func(c *ipc.Client) (api.LogoutResult, error) {
		return c.Logout(ctx, api.LogoutRequest{Server: o.Server, Account: o.Account, KeepRemote: o.KeepRemote, ForgetClient: o.ForgetClient, ForgetIdP: o.ForgetIdP})
	})
	if err != nil {
		return err
	}
	if o.JSON {
		return PrintJSON(f.IO.Out, res)
	}
	e := f.IO.ErrOut
	switch {
	case res.RevokeError == "no session": // --forget-client for a server without a session
		fmt.Fprintf(e, "mcpkey: no session for %s\n", res.Server)
	case res.Revoked:
		fmt.Fprintf(e, "mcpkey: logged out of %s; the refresh token was revoked at the authorization server\n", res.Server)
	default:
		fmt.Fprintf(e, "mcpkey: logged out of %s (removed locally; not revoked: %s)\n", res.Server, res.RevokeError)
	}
	if res.ForgotIdP != "" {
		fmt.Fprintf(e, "mcpkey: forgot the sign-in at the identity provider %s; the next login of its servers signs in through the browser\n", res.ForgotIdP)
	}
	if res.ForgotClient != "" {
		fmt.Fprintf(e, "mcpkey: forgot the client registration with %s; the next login registers again\n", res.ForgotClient)
	} else if o.ForgetClient {
		fmt.Fprintln(e, "mcpkey: no client registration was stored for its authorization server")
	}
	return nil
}

const loginHelp = `Asks the agent to sign you in to an MCP server: it discovers the server's
authorization server, registers a client if needed, and opens your browser
(PKCE, a loopback redirect). One login runs per server and account; a second
'mcpkey login' for the same joins the first. Ctrl-C cancels.

The browser is your $BROWSER (else the desktop's default), opened on your
$DISPLAY / $WAYLAND_DISPLAY, even when the agent was started elsewhere (never
as root). A sign-in nobody finishes ends after 10 minutes.

With --no-browser (SSH, headless) the URL is printed; sign in anywhere and paste
the address the browser ends on. When the authorization server offers the
device authorization grant, a code to type in is shown instead.

Without a browser (--grant; or grant in the server's config, where the agent
also starts the session on the first token request): client_credentials (the
client's secret in --client-secret-file, or its private_key_jwt key in
--client-key-file), jwt_bearer (workload identity: the workload's token in
--assertion-file, read again at every renewal) and enterprise (the sign-in at
a configured identity provider, --idp NAME, exchanged for this server). These
sessions have no refresh token: the agent runs the grant again near expiry.

examples:
  mcpkey login https://mcp.example.com/mcp
  mcpkey login github --scope repo:read
  mcpkey login work --account alice@example.com --no-browser
  mcpkey login https://mcp.example.com/mcp --client-id abc --client-secret-file ~/.abc.secret
  mcpkey login https://mcp.example.com/mcp --grant client_credentials --client-id bot --client-key-file ~/.bot.pem
  mcpkey login https://mcp.example.com/mcp --grant jwt_bearer --client-id ci --assertion-file /var/run/secrets/tokens/mcp
`

const tokenHelp = `Prints only the access token on stdout (like 'gh auth token'), refreshing it
first when it is about to expire (one refresh at most per call). A token the
server gave no lifetime for is printed until a server rejects it; --min-ttl
then refreshes it first. Exit code 3 means a login is needed.

For a key-bound (DPoP) session the token alone is useless: every request needs
a proof the agent signs for exactly that method and URL. --dpop METHOD with the
URL after the server prints both header lines for one request (send each proof
once); without it such a session answers an error saying so.

examples:
  curl -H "Authorization: Bearer $(mcpkey token github)" https://api.example.com/mcp
  mcpkey token https://mcp.example.com/mcp --json
  mcpkey token work --dpop POST https://mcp.example.com/mcp
`

const listHelp = `Lists the sessions the agent holds: server, account, state, expiry, scopes.
EXPIRES says "no expiry given" when the authorization server sent no token
lifetime. STATE says "key-bound" for a session whose tokens are bound to a
key only the agent holds (DPoP). Never prints tokens. A stored session that cannot be read (a corrupt
item) is listed as broken, with the item named; ` + "`mcpkey logout`" + ` removes it.

examples:
  mcpkey ls
  mcpkey list --json
`

const statusHelp = `Shows the agent: pid, version, socket, credential store, locked or not, and
how many sessions it holds or need a login.

examples:
  mcpkey status
  mcpkey status --json
`

const logoutHelp = `Removes a session from the agent and the keyring and, when the authorization
server offers RFC 7009 revocation, revokes its refresh token there. The session
is removed first; the agent then revokes for up to 10 s, even if you press
Ctrl-C. A broken session whose server cannot be read is named by the id that
` + "`mcpkey ls`" + ` shows.

--forget-client also drops the client registration mcpkey stored for the
server's authorization server (dynamic registration or client metadata URL),
so the next login registers again: for a server that forgot it (after a
restart) or to start over. It also works for a server without a session (a
login that never finished): discovery finds its authorization server. mcpkey
drops a registration by itself when the server answers invalid_client. A
pre-registered client (--client-id) is never stored there.

examples:
  mcpkey logout github
  mcpkey logout https://mcp.example.com/mcp --keep-remote
  mcpkey logout https://mcp.example.com/mcp --forget-client
`
