package ipc

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ProbeResult is what `mcpkey probe` reports of a server.
type ProbeResult struct {
	Server          string   `json:"server"`
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	ProtocolVersion string   `json:"protocol_version"`
	Tools           []string `json:"tools"`
}

// Probe connects to an MCP server over Streamable HTTP with the official
// go-sdk client and tokens from the agent (through an AuthTransport, so a
// 401 refreshes and a 403 insufficient_scope steps up via login), initializes,
// and lists the tools. login may be nil (then a missing session is an error).
func Probe(ctx context.Context, c *Client, server, account string, login func(context.Context, []string) error, version string) (*ProbeResult, error) {
	// Resolve the server's canonical URL through the agent (it knows the
	// config's names), signing in first when there is no session.
	tok, err := c.Token(ctx, agent.TokenRequest{Server: server, Account: account})
	var nl *agent.NeedsLoginError
	url := tok.Server
	switch {
	case errors.As(err, &nl) && login != nil:
		if err := login(ctx, nl.Scopes); err != nil {
			return nil, err
		}
		if tok, err = c.Token(ctx, agent.TokenRequest{Server: server, Account: account}); err != nil {
			return nil, err
		}
		url = tok.Server
	case err != nil:
		return nil, err
	}
	rt := &AuthTransport{Client: c, Server: server, Account: account, Login: login}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpkey-probe", Version: version}, nil)
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
	return res, nil
}
