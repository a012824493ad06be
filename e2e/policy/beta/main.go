// Command beta is alpha's twin with its own executable: it fetches a token
// for the server in its first argument over the raw line protocol (no
// ipc.Client), as a non-Go client would. Exit codes as alpha's.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("MCPKEY_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "beta:", err)
		os.Exit(1)
	}
	defer c.Close()
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "token.get",
		"params": map[string]any{"server": os.Args[1], "scopes": []string{"mcp:tools"}}})
	c.Write(append(req, '\n'))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "beta:", err)
		os.Exit(1)
	}
	var resp struct {
		Result *struct {
			AccessToken string `json:"access_token"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
			Data    struct {
				Code string `json:"code"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		fmt.Fprintln(os.Stderr, "beta: bad reply")
		os.Exit(1)
	}
	if resp.Result != nil {
		fmt.Printf("ok %d\n", len(resp.Result.AccessToken))
		return
	}
	fmt.Fprintln(os.Stderr, "beta:", resp.Error.Message)
	switch resp.Error.Data.Code {
	case "locked":
		os.Exit(5)
	case "denied":
		os.Exit(6)
	}
	os.Exit(1)
}
