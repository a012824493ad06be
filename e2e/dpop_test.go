package e2e

// DPoP end to end (issue 15 §1): oidc-provider with its DPoP feature and a
// nonce, the go-sdk MCP server in -dpop mode (proof, ath, cnf.jkt, replay and
// nonce checks), the real agent, Chromium for the one sign-in, and a go-sdk
// host talking through `mcpkey bridge`.

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type mcpStats struct {
	Authorized      int `json:"authorized"`
	Refused         int `json:"refused"`
	NonceChallenges int `json:"nonce_challenges"`
	ProofsRefused   int `json:"proofs_refused"`
}

func (s *mcpServer) stats(t *testing.T) mcpStats {
	t.Helper()
	var st mcpStats
	getJSON(t, strings.TrimSuffix(s.URL, "/mcp")+"/_test/stats", &st)
	return st
}

// TestDPoPBridge: a server that takes DPoP-bound tokens only gets a
// key-bound session after one sign-in; a bridge session works (the agent
// signs a proof per request and answers both nonce challenges); the access
// token alone, replayed as DPoP without a proof, as Bearer, or with a proof
// already used, is refused; `mcpkey token` explains and `--dpop` prints
// headers that work once.
func TestDPoPBridge(t *testing.T) {
	chromium(t)
	as := startAS(t, "AS_DPOP_NONCE=1")
	srv := startMCPServer(t, as.Issuer, "-dpop")
	as.AddResource(t, srv.Resource)
	a := startAgent(t, bin(t, "chromebrowser"))
	a.mustRun(t, 90*time.Second, "login", srv.URL)
	if ls := a.mustRun(t, 20*time.Second, "ls").Stdout; !strings.Contains(ls, "key-bound") {
		t.Errorf("mcpkey ls does not show the session key-bound:\n%s", ls)
	}
	if st := a.mustRun(t, 20*time.Second, "status").Stdout; !strings.Contains(st, "1 key-bound") {
		t.Errorf("mcpkey status does not count the key-bound session:\n%s", st)
	}

	ctx := deadline(t, 60*time.Second)
	cmd := exec.Command(bin(t, "mcpkey"), "bridge", srv.URL)
	cmd.Env = a.Env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-host", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect through mcpkey bridge: %v\n%s", err, stderr.String())
	}
	for i := range 3 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "bound"}})
		if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "bound" {
			t.Fatalf("echo %d: %v %+v\n%s", i, err, res, stderr.String())
		}
	}
	cs.Close()
	st := srv.stats(t)
	if st.Authorized < 4 || st.NonceChallenges != 1 || st.ProofsRefused != 0 {
		t.Errorf("server stats after the bridge session: %+v (want >=4 authorized, 1 nonce challenge, no proof refused)", st)
	}
	if s := as.Stats(t); s.CodeGrants != 1 {
		t.Errorf("code grants = %d, want 1 sign-in", s.CodeGrants)
	}

	// mcpkey token alone says what to do instead.
	r := a.run(t, 20*time.Second, "token", srv.URL)
	if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "--dpop") {
		t.Errorf("mcpkey token for a key-bound session: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// --dpop prints the two headers for one request: accepted once.
	r = a.mustRun(t, 20*time.Second, "token", srv.URL, "--dpop", "POST", srv.URL)
	headers := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		headers[k] = v
	}
	at, ok := strings.CutPrefix(headers["Authorization"], "DPoP ")
	if !ok || headers["DPoP"] == "" {
		t.Fatalf("mcpkey token --dpop printed %d lines", len(headers))
	}
	if strings.Contains(r.Stderr, at) {
		t.Error("mcpkey token --dpop wrote the token to stderr")
	}
	if cnf, _ := jwtClaims(t, at)["cnf"].(map[string]any); cnf["jkt"] == nil {
		t.Errorf("the access token is not bound to a key: cnf %v", cnf)
	}
	send := func(auth, proof string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", auth)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("DPoP "+at, headers["DPoP"]); code == http.StatusUnauthorized {
		t.Errorf("the printed headers were refused (the agent knew the server's nonce from the bridge session)")
	}
	if code := send("DPoP "+at, headers["DPoP"]); code != http.StatusUnauthorized {
		t.Errorf("a proof used twice: %d, want 401", code)
	}
	if code := send("DPoP "+at, ""); code != http.StatusUnauthorized {
		t.Errorf("the token without a proof: %d, want 401", code)
	}
	if code := send("Bearer "+at, ""); code != http.StatusUnauthorized {
		t.Errorf("the token as a bearer token: %d, want 401", code)
	}
	if st := srv.stats(t); st.ProofsRefused < 1 {
		t.Errorf("the replayed proof was not refused as such: %+v", st)
	}
}
