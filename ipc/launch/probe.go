package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ProbeOptions configures Probe.
type ProbeOptions struct {
	// Server is a configured name or URL; Account selects a session.
	Server, Account string
	// Login runs a login for the given scopes; nil means a missing session
	// is an error.
	Login func(ctx context.Context, scopes []string) error
	// Call, when set, names a tool to call with empty arguments after
	// listing the tools.
	Call string
	// Version is the client version sent in initialize.
	Version string
}

// ProbeResult is what `mcpkey probe` reports of a server.
type ProbeResult struct {
	Server          string   `json:"server"`
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	ProtocolVersion string   `json:"protocol_version"`
	Tools           []string `json:"tools"`
	// Called is the tool called (ProbeOptions.Call) and CallResult the text
	// of its result.
	Called     string `json:"called,omitempty"`
	CallResult string `json:"call_result,omitempty"`
}

// Probe connects to an MCP server over Streamable HTTP with the official
// go-sdk client and tokens from the agent (through an AuthTransport, so a
// 401 refreshes and a 403 insufficient_scope steps up via login), initializes,
// and lists the tools. login may be nil (then a missing session is an error).
func Probe(ctx context.Context, c *ipc.Client, opts ProbeOptions) (*ProbeResult, error) {
	server, account, login := opts.Server, opts.Account, opts.Login
	// Resolve the server's canonical URL through the agent (it knows the
	// config's names), signing in first when there is no session.
	tok, err := c.Token(ctx, api.TokenRequest{Server: server, Account: account})
	var nl *api.NeedsLoginError
	url := tok.Server
	if errors.Is(err, api.ErrDPoPRequired) {
		// A key-bound session: its token comes with a proof per request
		// (the AuthTransport asks); here only the URL is wanted.
		var sc api.ServerConfig
		if sc, err = c.ResolveServer(ctx, server); err == nil {
			url = sc.Resource
		}
	}
	switch {
	case errors.As(err, &nl) && login != nil:
		if err := login(ctx, nl.Scopes); err != nil {
			return nil, err
		}
		if tok, err = c.Token(ctx, api.TokenRequest{Server: server, Account: account}); err != nil {
			return nil, err
		}
		url = tok.Server
	case err != nil:
		return nil, err
	}
	rt := &AuthTransport{Client: c, Server: server, Account: account, Login: login}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpkey-probe", Version: opts.Version}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: rt},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	defer cs.Close()
	res := &ProbeResult{Server: url, Tools: []string{}}
	if ir := cs.InitializeResult(); ir != nil {
		res.ProtocolVersion = ir.ProtocolVersion
		if ir.ServerInfo != nil {
			res.Name, res.Version = ir.ServerInfo.Name, ir.ServerInfo.Version
		}
	}
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list tools of %s: %w", url, err)
		}
		res.Tools = append(res.Tools, t.Name)
	}
	if opts.Call != "" {
		cr, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: opts.Call, Arguments: map[string]any{}})
		if err != nil {
			return nil, fmt.Errorf("call %s on %s: %w", opts.Call, url, err)
		}
		res.Called = opts.Call
		var text []string
		for _, c := range cr.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		res.CallResult = strings.Join(text, "\n")
		if cr.IsError {
			return res, fmt.Errorf("tool %s on %s returned an error: %s", opts.Call, url, res.CallResult)
		}
	}
	return res, nil
}
