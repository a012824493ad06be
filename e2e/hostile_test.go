package e2e

// Hostile input (issue 13 items 4, 7 and 11): deeply nested JSON, another
// user flooding the WebSocket port, and bad params carrying secrets, each
// against a real agent process.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mcpkey/mcpkey/ipc"
)

// procKB reads a "Name: N kB" line of /proc/PID/status.
func procKB(t testing.TB, pid int, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%s in /proc/%d/status: %q", name, pid, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// deepLine is a 1 MiB request whose params nest one "[" per byte.
func deepLine() []byte {
	pre := `{"jsonrpc":"2.0","id":7,"method":"token.get","params":{"server":`
	return append([]byte(pre), bytes.Repeat([]byte("["), ipc.DefaultMaxFrame-len(pre)-1)...)
}

// sendUnix sends msg and a newline on a fresh connection to sock and
// returns the first reply line.
func sendUnix(ctx context.Context, sock string, msg []byte) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(append(msg[:len(msg):len(msg)], '\n')); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// dialWS opens the agent's WebSocket with the secret from agent.ws.json.
func dialWS(ctx context.Context, info ipc.WebSocketInfo) (*websocket.Conn, error) {
	c, _, err := websocket.DefaultDialer.DialContext(ctx, info.URL, http.Header{"Authorization": {"Bearer " + info.Secret}})
	return c, err
}

// sendWS sends msg as one text frame and returns the reply.
func sendWS(ctx context.Context, info ipc.WebSocketInfo, msg []byte) (string, error) {
	c, err := dialWS(ctx, info)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
		return "", err
	}
	_, b, err := c.ReadMessage()
	return string(b), err
}

// TestHostileDeepJSON: 12 connections at once each send one 1 MiB line of
// "[" — on a restricted socket (what an `ssh -R` remote reaches), on the
// main socket and over the WebSocket. The agent refuses each with an error
// naming the limit, its peak RSS (VmHWM) stays under 100 MB, and it keeps
// answering. Before the depth check one such line cost 400 MB.
func TestHostileDeepJSON(t *testing.T) {
	a := startWSAgent(t, "/bin/false")
	restricted := filepath.Join(filepath.Dir(a.Sock), "remote.sock")
	a.mustRun(t, 20*time.Second, "socket", "add", "--servers", "http://127.0.0.1:1/mcp", "--path", restricted, "--ttl", "1h")
	pid := a.p.cmd.Process.Pid
	before := procKB(t, pid, "VmHWM")
	line := deepLine()
	ctx := deadline(t, 60*time.Second)

	for _, tr := range []struct {
		name string
		send func(context.Context, []byte) (string, error)
	}{
		{"restricted socket", func(ctx context.Context, m []byte) (string, error) { return sendUnix(ctx, restricted, m) }},
		{"socket", func(ctx context.Context, m []byte) (string, error) { return sendUnix(ctx, a.Sock, m) }},
		{"websocket", func(ctx context.Context, m []byte) (string, error) { return sendWS(ctx, a.Info, m) }},
	} {
		var wg sync.WaitGroup
		replies := make([]string, 12)
		errs := make([]error, 12)
		for i := range replies {
			wg.Go(func() { replies[i], errs[i] = tr.send(ctx, line) })
		}
		wg.Wait()
		for i := range replies {
			if errs[i] != nil || !strings.Contains(replies[i], "nests deeper than allowed (64 levels)") {
				t.Errorf("%s: connection %d: reply %.200q, err %v", tr.name, i, replies[i], errs[i])
			}
		}
		// Still answering: a well-formed request on the same transport.
		reply, err := tr.send(ctx, []byte(`{"jsonrpc":"2.0","id":1,"method":"agent.hello","params":{"protocol_version":1}}`))
		if err != nil || !strings.Contains(reply, `"result"`) {
			t.Errorf("%s: hello after the attack: %.200q, %v", tr.name, reply, err)
		}
	}
	peak := procKB(t, pid, "VmHWM")
	t.Logf("agent VmHWM %d kB before, %d kB after 36 nested messages (VmRSS now %d kB)", before, peak, procKB(t, pid, "VmRSS"))
	if peak > 100<<10 {
		t.Errorf("agent peak RSS %d MB, want under 100 MB", peak>>10)
	}
	a.mustRun(t, 20*time.Second, "status")
}

// TestHostileParamsNotEchoed: requests whose secret-bearing params are bad
// (a passphrase, a client secret, a rejected token or a secret value of the
// wrong type; server URLs with userinfo and a query, unparsable or of
// another scheme) each carry a marker. The agent refuses every one, and the
// marker is in no reply, no line of its log and no file under its HOME (the
// audit log included).
func TestHostileParamsNotEchoed(t *testing.T) {
	a := startAgent(t, "/bin/false")
	const marker = "Mk7QzMARKER"
	for _, req := range []struct{ method, params string }{
		{"agent.lock", `{"passphrase":["pw-` + marker + `"]}`},
		{"agent.unlock", `{"passphrase":{"p":"pw-` + marker + `"}}`},
		{"session.login", `{"server":"https://mcp.example/mcp","client_id":"c","client_secret":["cs-` + marker + `"]}`},
		{"token.get", `{"server":"https://mcp.example/mcp","rejected_token":["rt-` + marker + `"]}`},
		{"token.get", `{"server":"https://mcp.example/mcp","min_ttl_seconds":"` + marker + `"}`},
		{"secret.set", `{"name":"api-key","value":["v-` + marker + `"]}`},
		{"secret.set", `{"name":"api-key","value":{"v":"` + marker + `"}}`},
		{"token.get", `{"server":"https://u:pw-` + marker + `@mcp.example/mcp?key=q-` + marker + `"}`},
		{"session.login", `{"server":"https://u:pw-` + marker + `@mcp.example/mcp"}`},
		{"session.logout", `{"server":"ftp://mcp.example/mcp?key=q-` + marker + `"}`},
		{"server.resolve", `{"server":"https://mcp.example/%zz` + marker + `"}`},
		{"token.get", `{"server":"http://[::1` + marker + `/mcp"}`},
	} {
		ctx := deadline(t, 20*time.Second)
		msg := `{"jsonrpc":"2.0","id":1,"method":"` + req.method + `","params":` + req.params + `}`
		reply, err := sendUnix(ctx, a.Sock, []byte(msg))
		if err != nil {
			t.Fatalf("%s %s: %v", req.method, req.params, err)
		}
		if !strings.Contains(reply, `"error"`) {
			t.Errorf("%s %s: accepted: %s", req.method, req.params, reply)
		}
		if strings.Contains(reply, marker) {
			t.Errorf("%s %s: the reply echoes the value: %s", req.method, req.params, reply)
		}
	}
	a.mustRun(t, 20*time.Second, "status") // all handled: the log has every line
	if strings.Contains(a.p.stderr.String(), marker) {
		t.Errorf("the agent logged a value:\n%s", a.p.stderr.String())
	}
	home := strings.TrimPrefix(a.Env[slices.IndexFunc(a.Env, func(s string) bool { return strings.HasPrefix(s, "HOME=") })], "HOME=")
	audit := false
	filepath.WalkDir(home, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			audit = audit || d.Name() == "audit.jsonl"
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(marker)) {
				t.Errorf("%s holds a value", path)
			}
		}
		return nil
	})
	if !audit {
		t.Errorf("no audit.jsonl under %s to check", home)
	}
}

// TestHostileWebSocketFlood: another user (uid 65534, through setpriv)
// opens 2000 TCP connections to the agent's WebSocket port and holds them
// without a byte. The agent runs with a soft fd limit of 256 under a hard
// limit of 1024, which it raises at start; it closes the other user's
// connections as it accepts them, keeps its descriptors in check, and the
// owner's status still answers over the Unix socket and over the
// WebSocket with its secret while the flood holds. Before, the flood
// exhausted the agent's descriptors and the Unix socket's accept failed.
func TestHostileWebSocketFlood(t *testing.T) {
	setpriv, err1 := exec.LookPath("setpriv")
	prlimit, err2 := exec.LookPath("prlimit")
	if err1 != nil || err2 != nil {
		skipOrFail(t, "setpriv or prlimit missing (util-linux)")
	}
	if os.Getuid() != 0 {
		skipOrFail(t, "running the flood as another user needs root (setpriv)")
	}
	a := startWSAgentUnder(t, []string{prlimit, "--nofile=256:1024", "--"}, "/bin/false")
	pid := a.p.cmd.Process.Pid
	if soft, hard := nofile(t, pid); soft < hard-1 || hard != 1024 { // Go sets hard-1
		t.Errorf("agent fd limit soft %d, hard %d: want the soft limit raised to the hard one", soft, hard)
	}

	// The flood binary where uid 65534 can run it.
	dir, err := os.MkdirTemp("", "fdflood")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(bin(t, "fdflood"))
	if err != nil {
		t.Fatal(err)
	}
	flooder := filepath.Join(dir, "fdflood")
	if err := os.WriteFile(flooder, b, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(a.Info.URL)
	if err != nil {
		t.Fatal(err)
	}
	flood := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", flooder, u.Host, "2000", "60s")
	flood.Env = []string{"PATH=/usr/bin:/bin"}
	stdin, _ := flood.StdinPipe()
	stdout, _ := flood.StdoutPipe()
	flood.Stderr = &syncBuffer{}
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); flood.Process.Kill(); flood.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var opened, failed int
	select {
	case line := <-lines:
		if _, err := fmt.Sscanf(line, "holding %d %d", &opened, &failed); err != nil {
			t.Fatalf("fdflood said %q (stderr %s)", line, flood.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("fdflood did not finish dialing within 60s")
	}
	t.Logf("uid 65534 holds %d connections to %s (%d dials failed)", opened, u.Host, failed)
	if opened < 1024 {
		t.Fatalf("the flood opened only %d connections; the attack needs more than the agent's limit", opened)
	}

	// While the flood holds: the owner's status over both transports,
	// promptly (before, the Unix socket's accept failed until net/http's
	// 10 s header timeout freed descriptors).
	if r := a.run(t, 5*time.Second, "status"); r.Code != 0 {
		t.Errorf("mcpkey status over the Unix socket during the flood: exit %d\n%s", r.Code, r.Stderr)
	}
	ws := *a.agentProc
	ws.Env = append(append([]string{}, a.Env...), "MCPKEY_SOCK="+a.Info.URL+"#"+a.InfoPath)
	if r := ws.run(t, 5*time.Second, "status"); r.Code != 0 {
		t.Errorf("mcpkey status over the WebSocket during the flood: exit %d\n%s", r.Code, r.Stderr)
	}
	if n := openFDs(t, pid); n > 200 {
		t.Errorf("the agent holds %d descriptors during the flood", n)
	} else {
		t.Logf("the agent holds %d descriptors during the flood", n)
	}
	if !strings.Contains(a.p.stderr.String(), "refused websocket connections from other users") {
		t.Errorf("the agent's log does not report the refused connections")
	}
}

// nofile returns the soft and hard "Max open files" of pid.
func nofile(t testing.TB, pid int) (soft, hard int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if _, err := fmt.Sscan(rest, &soft, &hard); err == nil {
				return soft, hard
			}
		}
	}
	t.Fatalf("no Max open files in /proc/%d/limits", pid)
	return 0, 0
}

// openFDs counts the descriptors pid holds.
func openFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHostileDeepJSONLaunchers: a hostile server answers initialize with
// one 1 MiB message nested one "[" per byte, and a host sends the proxy
// such messages, 12 at once. `mcpkey bridge` relays the answer and `mcpkey
// proxy` the requests; both peak under 100 MB (before: 800 MB each).
func TestHostileDeepJSONLaunchers(t *testing.T) {
	deep := func(head string) []byte {
		return append([]byte(head), bytes.Repeat([]byte("["), ipc.DefaultMaxFrame)...)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(deep(`{"jsonrpc":"2.0","id":1,"result":`))
	}))
	defer srv.Close()
	a := startAgent(t, "/bin/false")
	set := exec.Command(bin(t, "mcpkey"), "secret", "set", "deep-key")
	set.Env = a.Env
	set.Stdin = strings.NewReader("k-deep\n")
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("mcpkey secret set: %v\n%s", err, out)
	}
	a.configure(t, fmt.Sprintf("[servers.deep]\nurl = %q\nheaders = { \"X-Api-Key\" = \"secret:deep-key\" }\n", srv.URL+"/mcp"))

	t.Run("bridge", func(t *testing.T) {
		cmd := exec.Command(bin(t, "mcpkey"), "bridge", "deep")
		cmd.Env = a.Env
		cmd.Stderr = &syncBuffer{}
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
		io.WriteString(in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}`+"\n")
		line, err := bufio.NewReaderSize(out, 64<<10).ReadString('\n')
		if err != nil || len(line) < ipc.DefaultMaxFrame {
			t.Fatalf("bridge relayed %d bytes: %v\n%s", len(line), err, cmd.Stderr)
		}
		if peak := procKB(t, cmd.Process.Pid, "VmHWM"); peak > 100<<10 {
			t.Errorf("bridge peak RSS %d MB, want under 100 MB", peak>>10)
		} else {
			t.Logf("bridge VmHWM %d kB", peak)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		p, proxyURL, secret := startProxy(t, a)
		ctx := deadline(t, 60*time.Second)
		body := deep(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":`)
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, proxyURL+"/deep/mcp", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+secret)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("post through the proxy: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		wg.Wait()
		if peak := procKB(t, p.cmd.Process.Pid, "VmHWM"); peak > 100<<10 {
			t.Errorf("proxy peak RSS %d MB, want under 100 MB", peak>>10)
		} else {
			t.Logf("proxy VmHWM %d kB", peak)
		}
	})
}
