package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a map and counts lookups: the DNS edge, which
// cannot be made to lie for real on a test machine.
type fakeResolver struct {
	mu      sync.Mutex
	addrs   map[string][]string
	lookups []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, host)
	var out []netip.Addr
	for _, a := range r.addrs[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (r *fakeResolver) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lookups...)
}

func policyErr(t *testing.T, err error) *PolicyError {
	t.Helper()
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *PolicyError", err, err)
	}
	return pe
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestHTTPClientLoopbackAllowedAndUserAgent(t *testing.T) {
	var ua atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.Header.Get("User-Agent"))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	hc := NewHTTPClient(HTTPOptions{})
	for _, u := range []string{srv.URL, "http://localhost:" + port(t, srv)} {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok" {
			t.Fatalf("GET %s body = %q, %v", u, b, err)
		}
		if got := ua.Load(); got != DefaultUserAgent {
			t.Errorf("User-Agent = %q, want %q", got, DefaultUserAgent)
		}
	}
}

// TestHTTPClientRefusesAddresses checks each address rule: the request must
// fail with a *PolicyError naming the rule, before any connection.
func TestHTTPClientRefusesAddresses(t *testing.T) {
	res := &fakeResolver{addrs: map[string][]string{
		"rebind.test":   {"127.0.0.1"},
		"private.test":  {"10.1.2.3"},
		"mixed.test":    {"93.184.215.14", "192.168.1.1"},
		"metadata.test": {"169.254.169.254"},
	}}
	hc := NewHTTPClient(HTTPOptions{Resolver: res, ConnectTimeout: time.Second})
	tests := []struct {
		name, url, rule string
	}{
		{"http to a public host", "http://example.com/x", "https is required"},
		{"ftp scheme", "ftp://example.com/x", `scheme "ftp"`},
		{"private IPv4 literal", "https://10.0.0.1/x", "private"},
		{"private 192.168 literal", "https://192.168.0.10/x", "private"},
		{"link-local metadata literal", "https://169.254.169.254/latest", "private, link-local"},
		{"CGNAT literal", "https://100.64.0.1/x", "CGNAT"},
		{"IPv6 ULA literal", "https://[fd00::1]/x", "private"},
		{"IPv6 link-local literal", "https://[fe80::1]/x", "link-local"},
		{"IPv4-mapped private", "https://[::ffff:10.0.0.1]/x", "private"},
		{"NAT64 private", "https://[64:ff9b::a00:1]/x", "private"},
		{"multicast", "https://224.0.0.1/x", "multicast"},
		{"unspecified", "https://0.0.0.0/x", "unspecified"},
		{"name resolving to loopback", "https://rebind.test/x", "resolves to a loopback"},
		{"name resolving to private", "https://private.test/x", "private"},
		{"name resolving to metadata IP", "https://metadata.test/x", "link-local"},
		{"name with one private address", "https://mixed.test/x", "private"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hc.Get(tt.url)
			pe := policyErr(t, err)
			if !strings.Contains(pe.Rule, tt.rule) {
				t.Errorf("rule = %q, want it to mention %q", pe.Rule, tt.rule)
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimPrefix(tt.url, "https://"), "http://")[:4]) {
				t.Errorf("error %q does not name the target", err)
			}
		})
	}
	// The http rule is checked before any resolution.
	for _, h := range res.calls() {
		if h == "example.com" {
			t.Errorf("resolver was asked for example.com although the scheme was refused")
		}
	}
}

func TestHTTPClientAllowPrivateNetwork(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	// httptest's certificate is valid for example.com; point that at the
	// server, which is a public name resolving to loopback.
	res := &fakeResolver{addrs: map[string][]string{"example.com": {"127.0.0.1"}}}
	u := "https://example.com:" + port(t, srv) + "/"
	base := srv.Client().Transport.(*http.Transport)

	strict := NewHTTPClient(HTTPOptions{Base: base, Resolver: res})
	_, err := strict.Get(u)
	if pe := policyErr(t, err); !strings.Contains(pe.Target, "example.com (127.0.0.1)") {
		t.Errorf("target = %q, want host and address", pe.Target)
	}

	allow := NewHTTPClient(HTTPOptions{Base: base, Resolver: res, AllowPrivateNetwork: true})
	resp, err := allow.Get(u)
	if err != nil {
		t.Fatalf("with AllowPrivateNetwork: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d", resp.StatusCode)
	}
	// Even then, multicast and plain http to a non-loopback name stay refused.
	if _, err := allow.Get("https://224.0.0.1/"); err == nil {
		t.Error("multicast allowed with AllowPrivateNetwork")
	}
	if _, err := allow.Get("http://example.com:" + port(t, srv) + "/"); err == nil {
		t.Error("plain http to a non-loopback name allowed with AllowPrivateNetwork")
	}
}

func TestHTTPClientRedirects(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain")
	}))
	t.Cleanup(plain.Close)

	t.Run("https to http", func(t *testing.T) {
		tls := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/landing", http.StatusFound))
		t.Cleanup(tls.Close)
		hc := NewHTTPClient(HTTPOptions{Base: tls.Client().Transport.(*http.Transport)})
		_, err := hc.Get(tls.URL)
		if pe := policyErr(t, err); pe.Rule != "redirect from https to http" || !strings.Contains(pe.Target, "/landing") {
			t.Errorf("got %+v", pe)
		}
	})
	t.Run("to a private address", func(t *testing.T) {
		srv := httptest.NewServer(http.RedirectHandler("https://10.9.8.7/meta", http.StatusFound))
		t.Cleanup(srv.Close)
		_, err := NewHTTPClient(HTTPOptions{}).Get(srv.URL)
		if pe := policyErr(t, err); !strings.Contains(pe.Rule, "private") || pe.Target != "10.9.8.7" {
			t.Errorf("got %+v", pe)
		}
	})
	t.Run("to http on a public host", func(t *testing.T) {
		srv := httptest.NewServer(http.RedirectHandler("http://example.com/meta", http.StatusFound))
		t.Cleanup(srv.Close)
		_, err := NewHTTPClient(HTTPOptions{}).Get(srv.URL)
		if pe := policyErr(t, err); !strings.Contains(pe.Rule, "https is required") {
			t.Errorf("got %+v", pe)
		}
	})
	t.Run("more than 10 hops", func(t *testing.T) {
		var hits atomic.Int32
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := hits.Add(1)
			http.Redirect(w, r, fmt.Sprintf("%s/hop%d", srv.URL, n), http.StatusFound)
		}))
		t.Cleanup(srv.Close)
		_, err := NewHTTPClient(HTTPOptions{}).Get(srv.URL)
		if pe := policyErr(t, err); !strings.Contains(pe.Rule, "more than 10 redirects") {
			t.Errorf("got %+v", pe)
		}
		if got := hits.Load(); got != 11 {
			t.Errorf("server saw %d requests, want 11 (the first and 10 redirects)", got)
		}
	})
	t.Run("10 hops are fine", func(t *testing.T) {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int
			fmt.Sscanf(r.URL.Path, "/hop%d", &n)
			if n < 10 {
				http.Redirect(w, r, fmt.Sprintf("%s/hop%d", srv.URL, n+1), http.StatusFound)
				return
			}
			io.WriteString(w, "done")
		}))
		t.Cleanup(srv.Close)
		resp, err := NewHTTPClient(HTTPOptions{}).Get(srv.URL + "/hop0")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	t.Run("public into loopback", func(t *testing.T) {
		// Checked on the hook itself: a first hop on a public host cannot be
		// served on this machine without AllowPrivateNetwork, which waives it.
		check := checkRedirect(HTTPOptions{})
		from := httptest.NewRequest("GET", "https://as.example.com/a", nil)
		to := httptest.NewRequest("GET", "https://127.0.0.1:8080/admin", nil)
		if pe := policyErr(t, check(to, []*http.Request{from})); !strings.Contains(pe.Rule, "into loopback") {
			t.Errorf("got %+v", pe)
		}
		if err := checkRedirect(HTTPOptions{AllowPrivateNetwork: true})(to, []*http.Request{from}); err != nil {
			t.Errorf("with AllowPrivateNetwork: %v", err)
		}
		local := httptest.NewRequest("GET", "http://localhost:1/a", nil)
		if err := check(to, []*http.Request{local}); err != nil {
			t.Errorf("loopback to loopback: %v", err)
		}
	})
}

func TestHTTPClientBodyCap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Query().Get("n"), "%d", &n)
		w.Write([]byte(strings.Repeat("a", n)))
	}))
	t.Cleanup(srv.Close)
	hc := NewHTTPClient(HTTPOptions{})
	get := func(n int) ([]byte, error) {
		resp, err := hc.Get(fmt.Sprintf("%s/doc?n=%d&secret=x", srv.URL, n))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	b, err := get(DefaultMaxBody)
	if err != nil || len(b) != DefaultMaxBody {
		t.Fatalf("exactly the cap: %d bytes, %v", len(b), err)
	}
	for _, n := range []int{DefaultMaxBody + 1, 2 << 20} {
		b, err = get(n)
		var tl *BodyTooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("%d bytes: err = %v, want *BodyTooLargeError", n, err)
		}
		if tl.Limit != DefaultMaxBody || tl.URL != srv.URL+"/doc" {
			t.Errorf("got %+v (query must be dropped from the URL)", tl)
		}
		if len(b) > DefaultMaxBody {
			t.Errorf("read %d bytes past the cap", len(b))
		}
	}
	// A smaller configured cap.
	small := NewHTTPClient(HTTPOptions{MaxBody: 10})
	resp, err := small.Get(srv.URL + "/?n=11")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); !errors.As(err, new(*BodyTooLargeError)) {
		t.Errorf("MaxBody 10, 11 bytes: %v", err)
	}
}

func TestReadLimited(t *testing.T) {
	if b, err := ReadLimited(strings.NewReader("12345"), 5); err != nil || string(b) != "12345" {
		t.Errorf("at limit: %q, %v", b, err)
	}
	if _, err := ReadLimited(strings.NewReader("123456"), 5); !errors.As(err, new(*BodyTooLargeError)) {
		t.Errorf("past limit: %v", err)
	}
}

func TestHTTPClientTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.WriteHeader(200)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	hc := NewHTTPClient(HTTPOptions{Timeout: 200 * time.Millisecond})

	start := time.Now()
	_, err := hc.Get(srv.URL + "/headers")
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("stalled headers: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	resp, err := hc.Get(srv.URL + "/body")
	if err != nil {
		t.Fatalf("headers should arrive: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("stalled body: read succeeded, want the total timeout")
	}
}

func TestIsLoopbackName(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "localhost.": true, "app.localhost": true,
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true, "::ffff:127.0.0.1": true,
		"example.com": false, "10.0.0.1": false, "localhost.example.com": false, "0.0.0.0": false, "": false,
	} {
		if got := isLoopbackName(host); got != want {
			t.Errorf("isLoopbackName(%q) = %v, want %v", host, got, want)
		}
	}
}
