// Command mcpserver is the protected MCP server of mcpkey's end-to-end tests:
// a go-sdk streamable HTTP server behind auth.RequireBearerToken that accepts
// only RS256 JWTs from one authorization server (signature checked against
// the AS's JWKS, exp required, aud equal to this server's resource URL).
// With -introspect it checks tokens by OAuth token introspection (RFC 7662)
// instead, as resource servers of Ory Hydra (opaque tokens) do: the token
// must be active, unexpired, from the issuer, and its aud must contain this
// server's resource URL.
//
// It listens on 127.0.0.1:0 and prints one JSON line on stdout:
//
//	{"url":"http://127.0.0.1:PORT/mcp","resource":"…","resource_metadata":"…"}
//
// It serves Protected Resource Metadata (RFC 9728) at the path-inserted
// well-known URL and answers requests without a valid token with 401 and a
// WWW-Authenticate challenge naming it. GET /_test/stats reports how many MCP
// requests were authorized and how many were refused, so tests can assert
// that a client retried exactly once. Logs go to stderr and never contain a
// token.
//
// With -dpop it takes DPoP-bound tokens only (RFC 9449): its challenge uses
// the DPoP scheme and its PRM lists dpop_signing_alg_values_supported and
// dpop_bound_access_tokens_required; each request must present
// "Authorization: DPoP <token>" and a DPoP proof signed by the key of the
// token's cnf.jkt, for this method and URL, with ath, a fresh iat, a jti not
// seen before and the server's nonce (a 401 use_dpop_nonce with DPoP-Nonce
// tells it). /_test/stats then also counts nonce_challenges and
// proofs_refused. With -rotate-nonce as well, every request it lets through
// gets a new nonce in a DPoP-Nonce header (RFC 9449 §9); proofs with the
// one before are still accepted, older ones are challenged.
//
// Usage:
//
//	mcpserver -issuer http://127.0.0.1:PORT [-scopes "mcp:tools"]   (the default)
//	mcpserver -issuer http://127.0.0.1:PORT -dpop [-rotate-nonce]
//	mcpserver -issuer URL -introspect http://127.0.0.1:ADMIN/admin/oauth2/introspect [-scopes ""]
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpkey/mcpkey/internal/dpopcheck"
)

func main() {
	issuer := flag.String("issuer", "", "authorization server issuer URL (required)")
	scopes := flag.String("scopes", "mcp:tools", "space-separated scopes every request must carry (advertised in PRM and the 401 challenge)")
	listen := flag.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	introspect := flag.String("introspect", "", "check tokens at this RFC 7662 introspection endpoint instead of as JWTs")
	dpop := flag.Bool("dpop", false, "take DPoP-bound tokens only, with a fresh proof (and this server's nonce) per request")
	rotate := flag.Bool("rotate-nonce", false, "with -dpop: a new nonce on every response it lets through")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *issuer == "" {
		fmt.Fprintln(os.Stderr, "mcpserver: -issuer is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dpop && *introspect != "" {
		fmt.Fprintln(os.Stderr, "mcpserver: -dpop checks JWT access tokens; it does not go with -introspect")
		os.Exit(2)
	}
	if *rotate && !*dpop {
		fmt.Fprintln(os.Stderr, "mcpserver: -rotate-nonce goes with -dpop")
		os.Exit(2)
	}
	if err := run(ctx, *issuer, strings.Fields(*scopes), *listen, *introspect, *dpop, *rotate, logger); err != nil {
		fmt.Fprintf(os.Stderr, "mcpserver: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, issuer string, scopes []string, addr, introspect string, dpop, rotate bool, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	resource := base + "/mcp"
	prmPath := "/.well-known/oauth-protected-resource/mcp"

	keys := &jwksCache{issuer: issuer, client: &http.Client{Timeout: 10 * time.Second}}
	var stats struct{ authorized, refused, nonceChallenges, proofsRefused atomic.Int64 }

	parse := func(ctx context.Context, token string) (jwt.MapClaims, error) {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(token, claims, keys.keyFunc(ctx),
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithAudience(resource),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired())
		if err != nil {
			// The jwt error names the failed rule, never the token.
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		return claims, nil
	}
	verify := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		claims, err := parse(ctx, token)
		if err != nil {
			return nil, err
		}
		exp, _ := claims.GetExpirationTime()
		sub, _ := claims.GetSubject()
		scope, _ := claims["scope"].(string)
		aud, _ := claims.GetAudience()
		return &auth.TokenInfo{
			Scopes:     strings.Fields(scope),
			Expiration: exp.Time,
			UserID:     sub,
			Extra:      map[string]any{"aud": []string(aud), "iss": issuer},
		}, nil
	}

	if introspect != "" {
		verify = introspector(introspect, issuer, resource)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "mcpkey-e2e-server", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "the caller's token audience, subject, scopes and expiry (never the token)"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoami, error) {
			ti := req.Extra.TokenInfo
			if ti == nil {
				return nil, whoami{}, errors.New("no token info")
			}
			aud, _ := ti.Extra["aud"].([]string)
			return nil, whoami{Aud: aud, Sub: ti.UserID, Scopes: ti.Scopes, ExpiresAt: ti.Expiration}, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "echoes its text argument"},
		func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, echoArgs, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, in, nil
		})

	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	protected := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: base + prmPath,
		Scopes:              scopes,
	})(mcpHandler)
	prm := &oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{issuer},
		ScopesSupported:        scopes,
		BearerMethodsSupported: []string{"header"},
	}
	if dpop {
		prm.DPOPSigningAlgValuesSupported = []string{"ES256"}
		prm.DPOPBoundAccessTokensRequired = true
		protected = requireDPoP(protected, parse, resource, base+prmPath, rotate, logger, &stats.nonceChallenges, &stats.proofsRefused)
	}

	mux := http.NewServeMux()
	mux.Handle("GET "+prmPath, auth.ProtectedResourceMetadataHandler(prm))
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		protected.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden {
			stats.refused.Add(1)
			logger.Info("refused", "method", r.Method, "status", rec.status)
		} else {
			stats.authorized.Add(1)
		}
	}))
	mux.HandleFunc("GET /_test/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int64{
			"authorized":       stats.authorized.Load(),
			"refused":          stats.refused.Load(),
			"nonce_challenges": stats.nonceChallenges.Load(),
			"proofs_refused":   stats.proofsRefused.Load(),
		})
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	line, _ := json.Marshal(map[string]string{"url": resource, "resource": resource, "resource_metadata": base + prmPath})
	fmt.Println(string(line))
	logger.Info("listening", "url", resource, "issuer", issuer)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}

// requireDPoP admits a request only with "Authorization: DPoP <token>",
// the token valid (parse) and bound to a key (cnf.jkt), and a DPoP proof of
// that key for this request (internal/dpopcheck: method, URL, ath, iat, a
// jti never seen, this server's nonce). It then hands the request on as a
// bearer request, so the go-sdk middleware checks scopes and attaches the
// token info; with rotate, its response carries a new nonce. go-sdk's auth
// package knows no DPoP scheme, hence this gate.
func requireDPoP(next http.Handler, parse func(context.Context, string) (jwt.MapClaims, error), resource, prmURL string,
	rotate bool, logger *slog.Logger, nonceChallenges, proofsRefused *atomic.Int64) http.Handler {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	checker := &dpopcheck.Checker{Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(params, why string) {
			logger.Info("dpop refused", "why", why)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP algs="ES256", resource_metadata=%q%s`, prmURL, params))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		if !ok || tok == "" {
			refuse("", "no DPoP authorization")
			return
		}
		claims, err := parse(r.Context(), tok)
		if err != nil {
			refuse(`, error="invalid_token"`, err.Error())
			return
		}
		cnf, _ := claims["cnf"].(map[string]any)
		jkt, _ := cnf["jkt"].(string)
		if jkt == "" {
			refuse(`, error="invalid_token"`, "the token is not DPoP-bound")
			return
		}
		_, err = checker.Check(r.Header.Get("DPoP"), r.Method, resource, tok, jkt)
		switch {
		case errors.Is(err, dpopcheck.ErrUseNonce):
			nonceChallenges.Add(1)
			w.Header().Set("DPoP-Nonce", checker.CurrentNonce())
			refuse(`, error="use_dpop_nonce"`, "nonce")
			return
		case err != nil:
			proofsRefused.Add(1)
			refuse(`, error="invalid_dpop_proof"`, err.Error())
			return
		}
		if rotate {
			w.Header().Set("DPoP-Nonce", checker.Rotate())
		}
		r2 := r.Clone(r.Context())
		r2.Header.Set("Authorization", "Bearer "+tok)
		r2.Header.Del("DPoP")
		next.ServeHTTP(w, r2)
	})
}

type whoami struct {
	Aud       []string  `json:"aud"`
	Sub       string    `json:"sub"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
}

type echoArgs struct {
	Text string `json:"text"`
}

// statusRecorder remembers the status code a handler wrote. It forwards
// Flush so streamed (SSE) responses keep working.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// jwksCache fetches the AS's signing keys on first use and again when a token
// names an unknown key id (key rotation), at most once every 5 seconds.
// golang-jwt has no JWKS support, hence this small fetcher.
type jwksCache struct {
	issuer string
	client *http.Client

	mu      sync.Mutex // guards keys and fetched
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

func (c *jwksCache) keyFunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		c.mu.Lock()
		defer c.mu.Unlock()
		if k, ok := c.keys[kid]; ok {
			return k, nil
		}
		if time.Since(c.fetched) < 5*time.Second {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		keys, err := c.fetchLocked(ctx)
		c.fetched = time.Now()
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: %w", err)
		}
		c.keys = keys
		if k, ok := c.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
}

func (c *jwksCache) fetchLocked(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := c.getJSON(ctx, strings.TrimSuffix(c.issuer, "/")+"/.well-known/openid-configuration", &meta); err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, errors.New("authorization server metadata has no jwks_uri")
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := c.getJSON(ctx, meta.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey)
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		if err != nil {
			return nil, fmt.Errorf("key %q: modulus: %w", k.Kid, err)
		}
		e, err := base64.RawURLEncoding.DecodeString(k.E)
		if err != nil {
			return nil, fmt.Errorf("key %q: exponent: %w", k.Kid, err)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return keys, nil
}

func (c *jwksCache) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(v)
}

// introspector checks tokens at an RFC 7662 introspection endpoint (Ory
// Hydra's admin /admin/oauth2/introspect, which needs no client
// authentication): active, not expired, from issuer (when the answer names
// one), and aud containing resource. Refusals name the failed rule, never the
// token.
func introspector(endpoint, issuer, resource string) auth.TokenVerifier {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(url.Values{"token": {token}}.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("introspect: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("introspect: %s", resp.Status)
		}
		var ir struct {
			Active bool     `json:"active"`
			Aud    []string `json:"aud"`
			Iss    string   `json:"iss"`
			Sub    string   `json:"sub"`
			Scope  string   `json:"scope"`
			Exp    int64    `json:"exp"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&ir); err != nil {
			return nil, fmt.Errorf("introspect: %w", err)
		}
		exp := time.Unix(ir.Exp, 0)
		switch {
		case !ir.Active:
			return nil, fmt.Errorf("%w: token is not active", auth.ErrInvalidToken)
		case ir.Exp == 0 || !time.Now().Before(exp):
			return nil, fmt.Errorf("%w: token has expired or has no exp", auth.ErrInvalidToken)
		case ir.Iss != "" && ir.Iss != issuer:
			return nil, fmt.Errorf("%w: token is from issuer %q", auth.ErrInvalidToken, ir.Iss)
		case !slices.Contains(ir.Aud, resource):
			return nil, fmt.Errorf("%w: token audience %q does not contain %s", auth.ErrInvalidToken, ir.Aud, resource)
		}
		return &auth.TokenInfo{
			Scopes:     strings.Fields(ir.Scope),
			Expiration: exp,
			UserID:     ir.Sub,
			Extra:      map[string]any{"aud": ir.Aud, "iss": ir.Iss},
		}, nil
	}
}
