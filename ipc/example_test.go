package ipc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// Fetch an access token for an MCP server from the running agent.
func ExampleClient_Token() {
	var c ipc.Client // dials $MCPKEY_SOCK or the default socket
	defer c.Close()
	tok, err := c.Token(context.Background(), agent.TokenRequest{Server: "https://mcp.example.com/mcp"})
	var nl *agent.NeedsLoginError
	switch {
	case errors.As(err, &nl):
		fmt.Fprintf(os.Stderr, "run: mcpkey login %s (%s)\n", nl.Server, nl.Reason)
		return
	case errors.Is(err, ipc.ErrNoAgent):
		fmt.Fprintln(os.Stderr, "start the agent: mcpkey agent")
		return
	case err != nil:
		log.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://mcp.example.com/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
}

// Connect the official Go MCP SDK's streamable client through the agent:
// every request carries a token from the agent, and a 401 makes the agent
// refresh once before the request is retried.
func ExampleClient_Transport() {
	const url = "https://mcp.example.com/mcp"
	var c ipc.Client
	defer c.Close()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-host", Version: "1.0.0"}, nil)
	session, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: c.Transport(url, nil)},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	tools, err := session.ListTools(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tools.Tools {
		fmt.Println(t.Name)
	}
}
