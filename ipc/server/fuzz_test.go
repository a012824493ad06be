package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// fuzzBackend answers everything at once, calling login progress once.
type fuzzBackend struct{}

func (fuzzBackend) Status(context.Context) (agent.Status, error)          { return agent.Status{}, nil }
func (fuzzBackend) Sessions(context.Context) ([]agent.SessionInfo, error) { return nil, nil }
func (fuzzBackend) CompleteLogin(context.Context, string) error           { return agent.ErrNotFound }
func (fuzzBackend) Subscribe(ctx context.Context) <-chan agent.Event      { return make(chan agent.Event) }
func (fuzzBackend) Token(_ context.Context, r agent.TokenRequest) (agent.Token, error) {
	return agent.Token{AccessToken: "t", Server: r.Server}, nil
}
func (fuzzBackend) Logout(_ context.Context, r agent.LogoutRequest) (agent.LogoutResult, error) {
	return agent.LogoutResult{}, &agent.NeedsLoginError{Server: r.Server}
}
func (fuzzBackend) Login(_ context.Context, r agent.LoginRequest, p func(agent.Event)) (agent.SessionInfo, error) {
	p(agent.Event{Kind: agent.EventLoginProgress})
	return agent.SessionInfo{Server: r.Server}, nil
}

// FuzzDecode feeds arbitrary bytes through the line codec and the
// dispatcher: whatever arrives, every reply is one well-formed JSON-RPC
// message, the server never panics, and it either keeps answering (the
// sentinel request after the input gets its reply) or closes the connection.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"agent.hello","params":{"client":"x","protocol_version":1}}`,
		`{"jsonrpc":"2.0","id":"a","method":"token.get","params":{"server":"https://x/mcp","scopes":["r"],"min_ttl_seconds":30}}`,
		`{"jsonrpc":"2.0","id":2,"method":"token.get","params":{"server":7}}`,
		`{"jsonrpc":"2.0","id":3,"method":"session.login","params":{"server":"s","no_browser":true}}`,
		`{"jsonrpc":"2.0","id":4,"method":"session.logout","params":{"server":"s"}}`,
		`{"jsonrpc":"2.0","id":5,"method":"events.subscribe"}`,
		`{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":1}}`,
		`{"jsonrpc":"2.0","id":null,"method":"agent.status"}`,
		`{"jsonrpc":"2.0","id":[],"method":"agent.status"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sessions.list\"}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sessions.list\"}",
		`{"jsonrpc":"2.0","id":1e999,"method":"agent.status"}`,
		`[{"jsonrpc":"2.0"}]`, `{`, ``, "\xff\xfe", `{"jsonrpc":"2.0","id":"\u0000","method":"session.complete","params":{"url":"x"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, data []byte) {
	{
		srvConn, cliConn := net.Pipe()
		s := NewServer(fuzzBackend{}, ServerOptions{MaxFrame: 2048, FrameTimeout: time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		served := make(chan struct{})
		go func() {
			defer close(served)
			s.ServeConn(ctx, ipc.NewLineConn(srvConn, ipc.LineConnOptions{MaxFrame: 2048, FrameTimeout: time.Second}),
				agent.Caller{Transport: "test"})
		}()
		go func() {
			cliConn.Write(data)
			cliConn.Write([]byte("\n" + `{"jsonrpc":"2.0","id":"sentinel","method":"agent.status"}` + "\n"))
		}()
		cliConn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReaderSize(cliConn, 1<<16)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				var ne net.Error
				if errAs(err, &ne) && ne.Timeout() {
					t.Fatalf("no sentinel reply and no close")
				}
				break // closed by the server: allowed (frame cap)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("reply %q is not a JSON object: %v", line, err)
			}
			if string(m["jsonrpc"]) != `"2.0"` {
				t.Fatalf("reply %q lacks jsonrpc 2.0", line)
			}
			_, hasID := m["id"]
			_, hasMethod := m["method"]
			_, hasResult := m["result"]
			_, hasError := m["error"]
			if !hasMethod && (!hasID || hasResult == hasError) {
				t.Fatalf("malformed reply %q", line)
			}
			if string(m["id"]) == `"sentinel"` {
				break
			}
		}
		cliConn.Close()
		cancel()
		<-served
	}
}

func errAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}
