package ipc_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// importBackend is a testBackend that serves session.import.
type importBackend struct {
	testBackend
	got chan agent.ImportRequest
}

var _ server.ImportBackend = (*importBackend)(nil)

func (b *importBackend) Import(ctx context.Context, req agent.ImportRequest) (agent.SessionInfo, error) {
	b.got <- req
	return agent.SessionInfo{Server: req.Server, ClientID: req.Client.ClientID, State: agent.StateReady}, nil
}

func importRequest() api.ImportRequest {
	return api.ImportRequest{Server: "https://mcp.example.com/mcp", From: "mcp-remote",
		AccessToken: "at-import-secret", RefreshToken: "rt-import-secret", TokenType: "Bearer",
		ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), Scopes: []string{"mcp:tools"},
		Client: api.ImportedClient{ClientID: "abc", ClientSecret: "cs-import-secret", TokenEndpointAuthMethod: "client_secret_post", Issuer: "https://as.example.com"}}
}

// TestImportOnlyOnTheMainSocket: session.import carries tokens and a client
// secret over the main Unix socket to the backend intact, and is refused
// on the WebSocket (a web page's transport) without reaching the backend;
// neither logs a secret.
func TestImportOnlyOnTheMainSocket(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		b := &importBackend{got: make(chan agent.ImportRequest, 1)}
		s := startServerOn(t, tr, b, server.ServerOptions{})
		c := s.client()
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		want := importRequest()
		info, err := c.Import(ctx, want)
		switch tr {
		case "unix":
			if err != nil || info.ClientID != "abc" {
				t.Fatalf("Import: %+v, %v", info, err)
			}
			if got := <-b.got; !reflect.DeepEqual(got, want) {
				t.Fatalf("the backend got %+v, want %+v", got, want)
			}
		default:
			if !errors.Is(err, api.ErrDenied) {
				t.Fatalf("Import over %s: %v, want denied", tr, err)
			}
			if len(b.got) != 0 {
				t.Fatal("the backend was called")
			}
		}
		for _, secret := range []string{"at-import-secret", "rt-import-secret", "cs-import-secret"} {
			if strings.Contains(s.logs.String(), secret) {
				t.Fatalf("the server logged a secret:\n%s", s.logs)
			}
		}
	})
}

// TestImportNeedsAnImportBackend: a backend that does not import answers
// method not found; a request without a refresh token or client id is
// invalid and never reaches the backend.
func TestImportNeedsAnImportBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := startServer(t, &testBackend{}, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	var e *ipc.Error
	if _, err := c.Import(ctx, importRequest()); !errors.As(err, &e) || e.Code != ipc.CodeMethodNotFound {
		t.Fatalf("Import on a backend without it: %v", err)
	}
	b := &importBackend{got: make(chan agent.ImportRequest, 1)}
	s = startServer(t, b, server.ServerOptions{})
	c2 := s.client()
	defer c2.Close()
	for _, mod := range []func(*api.ImportRequest){
		func(r *api.ImportRequest) { r.RefreshToken = "" },
		func(r *api.ImportRequest) { r.Client.ClientID = "" },
		func(r *api.ImportRequest) { r.Server = "" },
	} {
		req := importRequest()
		mod(&req)
		if _, err := c2.Import(ctx, req); !errors.Is(err, api.ErrInvalidRequest) {
			t.Errorf("Import(%+v): %v, want invalid request", req.Client, err)
		}
	}
	if len(b.got) != 0 {
		t.Fatal("an invalid import reached the backend")
	}
}
