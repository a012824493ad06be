package e2e

// Issue 13 item 2: server A answers 301/302/307/308 pointing at server B.
// No path that attaches A's token (probe, Client.Transport, bridge, proxy)
// may send it to B, and none may refresh A's session because of B.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc"
)

// redirectFixture is server A (a front for an oauthtest resource and AS
// that redirects /mcp once Redirect is set) and server B (records what it
// receives and answers 401 invalid_token, as a server does to a token that
// is not its own).
type redirectFixture struct {
	A, B     *httptest.Server
	AS       *oauthtest.Server
	Redirect atomic.Int32 // the status A answers /mcp with; 0 = serve it

	mu        sync.Mutex
	bRequests int
	bAuth     []string // Authorization headers B saw
}

func newRedirectFixture(t *testing.T) *redirectFixture {
	f := &redirectFixture{}
	f.B = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.bRequests++
		if h := r.Header.Get("Authorization"); h != "" {
			f.bAuth = append(f.bAuth, h)
		}
		f.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "not my token", http.StatusUnauthorized)
	}))
	t.Cleanup(f.B.Close)
	var upstream atomic.Pointer[httputil.ReverseProxy]
	f.A = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code := int(f.Redirect.Load()); code != 0 && r.URL.Path == "/mcp" {
			http.Redirect(w, r, f.B.URL+"/mcp", code)
			return
		}
		upstream.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(f.A.Close)
	// The resource is A's URL; the challenge omits resource_metadata, so
	// the agent finds the metadata on A, which relays it.
	f.AS = oauthtest.New(t, oauthtest.Options{Resource: f.A.URL + "/mcp", NoResourceMetadataInChallenge: true,
		ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour})
	u, _ := url.Parse(f.AS.URL)
	upstream.Store(httputil.NewSingleHostReverseProxy(u))
	return f
}

func (f *redirectFixture) URL() string { return f.A.URL + "/mcp" }

// startProxy runs `mcpkey proxy` on a free loopback port for agent a and
// returns it, its URL and its secret.
func startProxy(t *testing.T, a *agentProc) (*proc, string, string) {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "proxy.secret")
	cmd := exec.Command(bin(t, "mcpkey"), "proxy", "--listen", "127.0.0.1:0", "--secret-file", secretFile)
	cmd.Env = a.Env
	var info struct {
		URL string `json:"url"`
	}
	p := start(t, "proxy", cmd, &info)
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	return p, info.URL, strings.TrimSpace(string(raw))
}

// leaked returns how many requests B got and the Authorization headers among them.
func (f *redirectFixture) seenByB() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bRequests, append([]string(nil), f.bAuth...)
}

// TestRedirectKeepsTokenAtItsOrigin: after a real login to A, A redirects
// to B with each of 301, 302, 307 and 308; `mcpkey probe`, the Go
// library's Client.Transport, `mcpkey bridge` and `mcpkey proxy` each
// refuse with an error naming both origins. B never receives an
// Authorization header and A's session is never refreshed.
func TestRedirectKeepsTokenAtItsOrigin(t *testing.T) {
	f := newRedirectFixture(t)
	a := startAgent(t, bin(t, "autobrowser"))
	a.mustRun(t, 60*time.Second, "login", f.URL())
	a.configure(t, fmt.Sprintf("[servers.demo]\nurl = %q\n", f.URL()))
	refusal := fmt.Sprintf("refusing to send the credentials for %s to %s", f.A.URL, f.B.URL)
	refreshes := f.AS.Refreshes()

	proxy, proxyURL, secret := startProxy(t, a) // once for every status

	for _, code := range []int{301, 302, 307, 308} {
		f.Redirect.Store(int32(code))
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			ctx := deadline(t, 60*time.Second)

			r := a.run(t, 30*time.Second, "probe", f.URL())
			if r.Code == 0 || !strings.Contains(r.Stderr, refusal) {
				t.Errorf("probe: exit %d, stderr:\n%s", r.Code, r.Stderr)
			}

			c := &ipc.Client{Path: a.Sock}
			defer c.Close()
			resp, err := (&http.Client{Transport: c.Transport(f.URL(), nil)}).Post(f.URL(), "application/json", strings.NewReader(`{}`))
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ipc.ErrOtherOrigin) || !strings.Contains(err.Error(), refusal) {
				t.Errorf("Client.Transport: %v", err)
			}

			bridge := exec.Command(bin(t, "mcpkey"), "bridge", "demo")
			bridge.Env = a.Env
			stderr := &syncBuffer{}
			bridge.Stderr = stderr
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).
				Connect(ctx, &mcp.CommandTransport{Command: bridge}, nil)
			if err == nil {
				cs.Close()
				t.Errorf("bridge: initialize through a redirect to another origin succeeded")
			} else if !strings.Contains(err.Error()+stderr.String(), refusal) {
				t.Errorf("bridge: %v\n%s", err, stderr.String())
			}

			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, proxyURL+"/demo/mcp",
				strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err = noFollow.Do(req)
			if err != nil {
				t.Fatalf("proxy: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" || !strings.Contains(string(body), refusal) {
				t.Errorf("proxy: status %d, Location %q, body %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}

			if n, auth := f.seenByB(); len(auth) > 0 {
				t.Errorf("B received %d requests, %d with an Authorization header", n, len(auth))
			}
			if got := f.AS.Refreshes(); got != refreshes {
				t.Errorf("A's session was refreshed %d times because of B", got-refreshes)
			}
		})
	}
	tok := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", f.URL()).Stdout)
	if strings.Contains(proxy.stderr.String(), tok) {
		t.Error("the proxy logged the token")
	}
}
