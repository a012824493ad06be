package launch

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"encoding/json"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// ProxyConfig configures a Proxy. Client is required.
type ProxyConfig struct {
	// Client talks to the agent.
	Client *ipc.Client
	// Secret is the per-launch bearer secret TCP clients must present
	// (Authorization: Bearer SECRET). Required to serve TCP; Unix-socket
	// clients are checked by peer uid instead. See NewSecret.
	Secret string
	// AllowedOrigins are Origin values accepted (a browser-based host's
	// origin); any other Origin is refused with 403. Requests without an
	// Origin (native hosts) are accepted.
	AllowedOrigins []string
	// LoginWait bounds a login the proxy starts; 0 means the agent's
	// login_wait. LoginGrace is how long a request waits for a login in
	// progress before it is answered with a JSON-RPC error saying what the
	// user must do; 0 means DefaultLoginGrace.
	LoginWait, LoginGrace time.Duration
	// Base sends the requests upstream; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Status receives one-line progress for the user ("mcpkey proxy: …");
	// nil discards.
	Status io.Writer
	// Logger receives request logs (never bodies or tokens); nil discards.
	Logger *slog.Logger
}

// Proxy serves a local Streamable HTTP endpoint per configured server,
// http://127.0.0.1:PORT/NAME/mcp, forwarding each request to the server
// with the agent's token (or the server's static headers) injected: the
// auth-proxy pattern for hosts that speak HTTP MCP but must never see a
// token. Responses stream through (SSE included) with Mcp-Session-Id and
// the other MCP headers untouched; the client's Authorization, cookies and
// hop-by-hop headers are not forwarded.
//
// Local clients are checked as any local endpoint: Host must name the
// listener (else 421, against DNS rebinding), an Origin must be allowed
// (else 403), and TCP clients present the per-launch secret, compared in
// constant time (else 401). Over a Unix socket the peer's uid must be ours
// instead (Linux; elsewhere the socket's 0600 mode and 0700 directory).
type Proxy struct {
	cfg ProxyConfig
	log *slog.Logger

	smu sync.Mutex // serialises writes to cfg.Status

	// mu guards routes.
	mu     sync.Mutex
	routes map[string]*route
}

// route is one upstream server.
type route struct {
	t     *target
	gate  *gate
	rp    *httputil.ReverseProxy
	grace time.Duration
}

// NewSecret returns a fresh random secret for ProxyConfig.Secret.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewProxy returns a Proxy for cfg.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Client == nil {
		return nil, errors.New("proxy: Client is required")
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, routes: map[string]*route{}}
	p.log = cmp.Or(p.log, slog.New(slog.DiscardHandler))
	p.cfg.Status = cmp.Or(p.cfg.Status, io.Discard)
	p.cfg.LoginGrace = cmp.Or(p.cfg.LoginGrace, DefaultLoginGrace)
	return p, nil
}

func (p *Proxy) statusf(format string, a ...any) {
	p.smu.Lock()
	defer p.smu.Unlock()
	fmt.Fprintf(p.cfg.Status, "mcpkey proxy: "+format+"\n", a...)
}

type peerKey struct{}

// Serve serves ln until ctx ends. A TCP listener must be on a loopback
// address and needs cfg.Secret; a Unix listener checks the peer's uid.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	var hosts []string
	unixSock := false
	switch a := ln.Addr().(type) {
	case *net.TCPAddr:
		if !a.IP.IsLoopback() {
			return fmt.Errorf("proxy: %s is not a loopback address", a)
		}
		if p.cfg.Secret == "" {
			return errors.New("proxy: a TCP listener needs ProxyConfig.Secret")
		}
		port := fmt.Sprint(a.Port)
		hosts = []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}
	case *net.UnixAddr:
		unixSock = true
	default:
		return fmt.Errorf("proxy: unsupported listener %T", ln.Addr())
	}
	srv := &http.Server{
		Handler:           p.handler(hosts, unixSock),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if unixSock {
				return context.WithValue(ctx, peerKey{}, peerOK(c))
			}
			return ctx
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	}
}

// handler checks the local client, then forwards.
func (p *Proxy) handler(hosts []string, unixSock bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unixSock && !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, r.Host) }) {
			http.Error(w, "mcpkey proxy: misdirected request (Host must name this listener)", http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !slices.Contains(p.cfg.AllowedOrigins, o) {
			http.Error(w, "mcpkey proxy: origin not allowed", http.StatusForbidden)
			return
		}
		if unixSock {
			if ok, _ := r.Context().Value(peerKey{}).(bool); !ok {
				http.Error(w, "mcpkey proxy: peer refused", http.StatusForbidden)
				return
			}
		} else if !p.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcpkey proxy"`)
			http.Error(w, "mcpkey proxy: present the proxy's secret as Authorization: Bearer", http.StatusUnauthorized)
			return
		}
		name, ok := routeName(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		rt, err := p.route(r.Context(), name)
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, agent.ErrNotFound) {
				code = http.StatusNotFound
			}
			http.Error(w, "mcpkey proxy: "+err.Error(), code)
			return
		}
		// Read the message first: its id answers a failure (clients match
		// error bodies by id), and the transport can replay it after a 401.
		id := "null"
		if r.Body != nil && r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessage+1))
			r.Body.Close()
			if err != nil || len(body) > MaxMessage {
				http.Error(w, "mcpkey proxy: message too large or unreadable", http.StatusRequestEntityTooLarge)
				return
			}
			if q := peek(body); q.id != "" {
				id = q.id
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			r.ContentLength = int64(len(body))
		}
		ctx := context.WithValue(withLoginWait(r.Context(), rt.grace), rpcIDKey{}, id)
		if err := rt.gate.await(ctx, rt.grace); err != nil {
			p.loginNeeded(w, rt, id)
			return
		}
		rt.rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authorized compares the bearer secret in constant time.
func (p *Proxy) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(p.cfg.Secret)) == 1
}

// routeName returns NAME from /NAME/mcp.
func routeName(path string) (string, bool) {
	name, rest, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok || rest != "mcp" || name == "" {
		return "", false
	}
	return name, true
}

// route returns the upstream for a configured server name, resolving it
// (and loading its header secrets) on first use.
func (p *Proxy) route(ctx context.Context, name string) (*route, error) {
	p.mu.Lock()
	rt := p.routes[name]
	p.mu.Unlock()
	if rt != nil {
		return rt, nil
	}
	t, err := resolve(ctx, p.cfg.Client, name)
	if err != nil {
		return nil, err
	}
	if t.sc.Name != name {
		return nil, fmt.Errorf("%w: %q is not a configured server name", agent.ErrNotFound, name)
	}
	wait := cmp.Or(p.cfg.LoginWait, t.sc.LoginWait)
	wait = cmp.Or(wait, agent.DefaultLoginWait)
	g := &gate{client: p.cfg.Client, t: t, wait: wait, statusf: p.statusf}
	// Logins outlive the request that starts them.
	bctx := context.WithoutCancel(ctx)
	transport, err := t.transport(p.cfg.Client, "", p.cfg.Base, nil, func(lctx context.Context, scopes []string) error {
		return g.login(bctx, lctx, scopes)
	})
	if err != nil {
		return nil, err
	}
	upstream, err := url.Parse(t.sc.URL)
	if err != nil {
		return nil, err
	}
	rt = &route{t: t, gate: g, grace: p.cfg.LoginGrace}
	rt.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = upstream
			pr.Out.Host = ""
			// The client's credentials are for the proxy, not upstream;
			// the transport adds the server's own.
			for _, h := range []string{"Authorization", "Cookie", "Origin", "Referer", "Forwarded"} {
				pr.Out.Header.Del(h)
			}
		},
		Transport:     transport,
		FlushInterval: -1, // stream SSE and everything else at once
		// A redirect to another origin is refused as the other paths
		// refuse it, rather than handed to a client that may follow it
		// with the proxy's secret.
		ModifyResponse: func(resp *http.Response) error {
			loc := resp.Header.Get("Location")
			if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
				return nil
			}
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return errors.New("the server redirected to an unreadable Location")
			}
			return ipc.CheckOrigin(t.sc.URL, u)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var nl *agent.NeedsLoginError
			id, _ := r.Context().Value(rpcIDKey{}).(string)
			if errors.Is(err, errLoginPending) || errors.As(err, &nl) || errors.Is(err, agent.ErrNeedsLogin) {
				p.loginNeeded(w, rt, id)
				return
			}
			if r.Context().Err() != nil {
				return
			}
			if errors.Is(err, agent.ErrTokenRejected) {
				// A 500, whose body MCP clients show (see loginNeeded).
				writeRPCError(w, http.StatusInternalServerError, id, jsonrpcInternal, fmt.Sprintf("mcpkey proxy: %s: %v", name, err), nil)
				return
			}
			p.log.Info("upstream request failed", "server", name, "err", err)
			writeRPCError(w, http.StatusBadGateway, id, jsonrpcInternal, fmt.Sprintf("mcpkey proxy: %s: %v", name, err), nil)
		},
	}
	p.mu.Lock()
	if prev := p.routes[name]; prev != nil {
		rt = prev
	} else {
		p.routes[name] = rt
	}
	p.mu.Unlock()
	return rt, nil
}

const jsonrpcInternal = -32603

// loginNeeded answers 500 with a JSON-RPC error body telling the user to
// sign in, which MCP clients surface (go-sdk and the TypeScript SDK show the
// body of a 500; go-sdk drops the body of a 503 as transient). Not 401: the
// host would start its own OAuth discovery against the proxy.
func (p *Proxy) loginNeeded(w http.ResponseWriter, rt *route, id string) {
	msg, data := rt.gate.loginError()
	w.Header().Set("Retry-After", "10")
	writeRPCError(w, http.StatusInternalServerError, id, CodeLoginRequired, msg, data)
}

type rpcIDKey struct{}

// writeRPCError answers with a JSON-RPC error for request id (raw JSON).
func writeRPCError(w http.ResponseWriter, status int, id string, code int, msg string, data any) {
	e := map[string]any{"code": code, "message": msg}
	if data != nil {
		e["data"] = data
	}
	id = cmp.Or(id, "null")
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "error": e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
