// Command alpha asks the agent at $MCPKEY_SOCK for a token for the server
// in its first argument, the way an MCP host would. It prints "ok" and the
// token's length (never the token) and exits 0; on error it prints the
// error and exits 5 (locked), 6 (denied) or 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

func main() {
	c := &ipc.Client{Path: os.Getenv("MCPKEY_SOCK"), Name: "alpha"}
	tok, err := c.Token(context.Background(), agent.TokenRequest{Server: os.Args[1], Scopes: []string{"mcp:tools"}})
	switch {
	case err == nil:
		fmt.Printf("ok %d\n", len(tok.AccessToken))
		return
	case errors.Is(err, agent.ErrLocked):
		fmt.Fprintln(os.Stderr, "alpha:", err)
		os.Exit(5)
	case errors.Is(err, agent.ErrDenied):
		fmt.Fprintln(os.Stderr, "alpha:", err)
		os.Exit(6)
	}
	fmt.Fprintln(os.Stderr, "alpha:", err)
	os.Exit(1)
}
