// Command answer is the protocol-speaking attacker of the approval tests:
// it tries to allow the approval its last argument names on the agent at
// $MCPKEY_SOCK itself (other arguments let it pose as `mcpkey tray`),
// without mcpkey approve, sending a guessed confirmation code, and prints
// what the agent said: "answer: denied: …", "answer: error: …" or
// "answer: accepted …". It always exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

func main() {
	id, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if err != nil {
		fmt.Println("answer: error: bad id")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &ipc.Client{Path: os.Getenv("MCPKEY_SOCK"), Name: "answer"}
	defer c.Close()
	r, err := c.Answer(ctx, agent.Answer{ID: id, Decision: agent.DecisionAllowOnce, Code: "000000"})
	switch {
	case errors.Is(err, agent.ErrDenied):
		fmt.Println("answer: denied:", err)
	case err != nil:
		fmt.Println("answer: error:", err)
	default:
		fmt.Printf("answer: accepted %+v\n", r)
	}
}
