package ipc

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIdleConnectionNoticesClose: nobody waits for a reply on an idle
// connection, yet a reader goroutine takes it within idleWatch and finds
// the agent gone, so the next call dials afresh instead of sending a
// request into a dead connection.
func TestIdleConnectionNoticesClose(t *testing.T) {
	dir, err := os.MkdirTemp("", "mk") // short enough for sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "idle.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close() // after one reply: the agent went away
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		c.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"version":"test"}}` + "\n"))
	}()
	c := &Client{Path: path}
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	cc := c.cc
	c.mu.Unlock()
	select {
	case <-cc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection's close went unnoticed")
	}
}
