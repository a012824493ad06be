package oauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// The hardened HTTP client. Every request mcpkey makes on behalf of an MCP
// server (metadata, registration, token, revocation) goes through one of
// these, because every URL involved comes from an untrusted server
// (spec-checklist §L, §N.3; RFC 9728 §7.7; MCP security best practices
// §Server-Side Request Forgery).
//
// Gap in go-sdk v1.8.0 (spec-checklist §P, gaps 8 and 10): oauthex has an
// SSRF-hardened discovery client, but it is switched off as soon as the
// caller passes its own transport (which tests and proxies need), and
// RegisterClient and the token exchange use the plain client. So mcpkey has
// its own, applied to every request.

// Defaults for HTTPOptions.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	// DefaultIdleConnTimeout closes idle connections before servers
	// usually do (Node's default keep-alive is 5 s): a token request is a
	// POST that must not be replayed (a rotated refresh token would trip
	// reuse detection), so net/http will not retry it when the server
	// closes the reused connection under it. A fresh connection is cheap
	// next to that.
	DefaultIdleConnTimeout = 2 * time.Second
	DefaultMaxBody         = 1 << 20 // 1 MiB
	DefaultUserAgent       = "mcpkey"
	maxRedirects           = 10
)

// Resolver looks up a host name's addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// HTTPOptions configures NewHTTPClient. The zero value is the strict
// default.
type HTTPOptions struct {
	// AllowPrivateNetwork permits private (RFC 1918, fc00::/7), link-local,
	// CGNAT (100.64/10) addresses, and host names that resolve to loopback.
	// It is the per-server allow_private_network setting. It never permits
	// plain http to a non-loopback host, multicast or the unspecified
	// address.
	AllowPrivateNetwork bool
	// Timeout bounds a whole request, body included. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// ConnectTimeout bounds each TCP connect. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxBody caps every response body; reading past it fails with a
	// *BodyTooLargeError. Zero means DefaultMaxBody.
	MaxBody int64
	// Base is cloned for TLS settings and connection limits (tests pass
	// httptest's transport to trust its certificate). Nil means
	// http.DefaultTransport. Its Proxy, DialContext and DialTLSContext are
	// replaced: proxies are not used, because the address check must see the
	// real peer.
	Base *http.Transport
	// Resolver resolves host names before the address check. Nil means
	// net.DefaultResolver.
	Resolver Resolver
	// UserAgent is sent when a request sets none. Empty means
	// DefaultUserAgent.
	UserAgent string
}

// PolicyError is a request the hardened client refused to make. It is
// returned wrapped (in a *url.Error from http.Client), so use errors.As.
type PolicyError struct {
	// Target is the URL, or host:port at dial time, that was refused.
	Target string
	// Rule says which rule it broke.
	Rule string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("refused %s: %s", e.Target, e.Rule)
}

// BodyTooLargeError is returned when reading a response body past the cap.
type BodyTooLargeError struct {
	URL   string
	Limit int64
}

func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("response body from %s exceeds %d bytes", e.URL, e.Limit)
}

// NewHTTPClient returns the hardened client:
//   - https only, except for loopback hosts written as such in the URL
//     (localhost, 127.0.0.0/8, ::1);
//   - the address check runs on the resolved address at dial time, and the
//     connection goes to exactly the address that was checked, so DNS
//     rebinding cannot slip past it. A public name resolving to loopback is
//     refused (a rebinding trick); private, link-local and CGNAT addresses
//     are refused unless AllowPrivateNetwork; multicast and unspecified
//     addresses always;
//   - every redirect hop is re-checked: at most 10, never https → http,
//     never from a non-loopback host into a loopback one;
//   - response bodies are capped; connect and total timeouts.
func NewHTTPClient(opts HTTPOptions) *http.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	opts.UserAgent = cmp.Or(opts.UserAgent, DefaultUserAgent)
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	var base *http.Transport
	if opts.Base != nil {
		base = opts.Base.Clone()
	} else {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	d := &dialer{
		opts: opts,
		net:  &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second},
	}
	base.Proxy = nil
	base.DialContext = d.DialContext
	base.DialTLSContext = nil
	base.TLSHandshakeTimeout = cmp.Or(base.TLSHandshakeTimeout, opts.ConnectTimeout)
	if opts.Base == nil {
		base.IdleConnTimeout = DefaultIdleConnTimeout
	}
	return &http.Client{
		Transport:     &policyTransport{base: base, opts: opts},
		Timeout:       opts.Timeout,
		CheckRedirect: checkRedirect(opts),
	}
}

// policyTransport checks the scheme rule on every request (the first and
// every redirect hop), sets the User-Agent and caps the response body.
type policyTransport struct {
	base *http.Transport
	opts HTTPOptions
}

func (t *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkScheme(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.opts.UserAgent)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.opts.MaxBody, limit: t.opts.MaxBody, url: redactURL(req.URL)}
	return resp, nil
}

// checkScheme enforces "https, or http to a loopback host".
func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackName(u.Hostname()) {
			return nil
		}
		return &PolicyError{Target: redactURL(u), Rule: "https is required for non-loopback hosts"}
	default:
		return &PolicyError{Target: redactURL(u), Rule: fmt.Sprintf("scheme %q is not allowed", u.Scheme)}
	}
}

func checkRedirect(opts HTTPOptions) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects { // via holds every earlier request: 10 redirects are fine
			return &PolicyError{Target: redactURL(req.URL), Rule: fmt.Sprintf("more than %d redirects", maxRedirects)}
		}
		prev := via[len(via)-1].URL
		if prev.Scheme == "https" && req.URL.Scheme != "https" {
			return &PolicyError{Target: redactURL(req.URL), Rule: "redirect from https to " + req.URL.Scheme}
		}
		if !opts.AllowPrivateNetwork && !isLoopbackName(via[0].URL.Hostname()) && isLoopbackName(req.URL.Hostname()) {
			return &PolicyError{Target: redactURL(req.URL), Rule: "redirect from a non-loopback host into loopback"}
		}
		return checkScheme(req.URL)
	}
}

// dialer resolves, checks every address and dials only checked addresses.
type dialer struct {
	opts HTTPOptions
	net  *net.Dialer
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = d.opts.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	// Check every address before dialing any: a name with one public and
	// one private address is a rebinding setup, not a fallback.
	for _, ip := range ips {
		if err := checkAddr(host, ip, d.opts.AllowPrivateNetwork); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, ip := range ips {
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

var (
	cgnat    = netip.MustParsePrefix("100.64.0.0/10")
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")
	reserved = netip.MustParsePrefix("240.0.0.0/4")
	nat64    = netip.MustParsePrefix("64:ff9b::/96")
)

// checkAddr applies the address rules to one resolved address of host.
func checkAddr(host string, ip netip.Addr, allowPrivate bool) error {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		// The well-known NAT64 prefix embeds an IPv4 address: judge that.
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:16]))
	}
	target := host
	if host != ip.String() {
		target = host + " (" + ip.String() + ")"
	}
	refuse := func(rule string) error { return &PolicyError{Target: target, Rule: rule} }
	switch {
	case !ip.IsValid():
		return refuse("invalid address")
	case ip.IsUnspecified() || thisNet.Contains(ip):
		return refuse("unspecified address")
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return refuse("multicast or broadcast address")
	case ip.IsLoopback():
		if isLoopbackName(host) || allowPrivate {
			return nil
		}
		return refuse("a non-loopback host name resolves to a loopback address (allow_private_network permits it)")
	case ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || cgnat.Contains(ip) || reserved.Contains(ip):
		if allowPrivate {
			return nil
		}
		return refuse("private, link-local or CGNAT address (allow_private_network permits it)")
	}
	if isLoopbackName(host) {
		// "localhost" that resolves elsewhere is a misconfigured host.
		return refuse("loopback host name resolves to a non-loopback address")
	}
	return nil
}

// isLoopbackName reports whether a URL host (without port) names loopback
// by itself: "localhost" or a loopback IP literal. It never resolves.
func isLoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// isLoopbackURL reports whether rawURL's host is loopback by isLoopbackName.
func isLoopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && isLoopbackName(u.Hostname())
}

// redactURL drops userinfo, query and fragment, which may carry secrets
// in URLs someone else built; error messages use it.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}

// cappedBody fails once more than limit bytes have been read.
type cappedBody struct {
	rc    io.ReadCloser
	left  int64 // bytes still allowed
	limit int64
	url   string
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, &BodyTooLargeError{URL: b.url, Limit: b.limit}
	}
	// Read one byte beyond the cap so an exactly-full body still ends in EOF.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		n += int(b.left)
		return n, &BodyTooLargeError{URL: b.url, Limit: b.limit}
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// ReadLimited reads r to the end, failing with a *BodyTooLargeError (URL
// empty) past limit bytes. Bodies from the hardened client are capped
// already; this is for anything else.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &BodyTooLargeError{Limit: limit}
	}
	return b, nil
}
