package launch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

var _ server.SecretBackend = (*agent.Agent)(nil)

// MissingSecretsError names the stored secrets a launch needs but the agent
// does not hold. Nothing is started when it is returned.
type MissingSecretsError struct {
	// Server is the server whose config references them ("" for
	// references from the environment).
	Server string
	Names  []string
}

func (e *MissingSecretsError) Error() string {
	var b strings.Builder
	b.WriteString("missing secret")
	if len(e.Names) > 1 {
		b.WriteString("s")
	}
	b.WriteString(" " + strings.Join(e.Names, ", "))
	if e.Server != "" {
		b.WriteString(" (referenced by " + e.Server + ")")
	}
	b.WriteString("; store with: mcpkey secret set " + e.Names[0])
	return b.String()
}

// Is makes errors.Is(err, agent.ErrNotFound) true.
func (e *MissingSecretsError) Is(target error) bool { return target == agent.ErrNotFound }

// secrets loads the values of refs ("secret:NAME" → value), reporting every
// missing one at once.
func secrets(ctx context.Context, c *ipc.Client, server string, refs []string) (map[string]string, error) {
	out := make(map[string]string)
	var missing []string
	for _, ref := range refs {
		name, ok := config.SecretRef(ref)
		if !ok {
			return nil, fmt.Errorf("%w: %q is not a secret reference (secret:NAME)", agent.ErrInvalidRequest, ref)
		}
		if _, done := out[name]; done || slices.Contains(missing, name) {
			continue
		}
		v, err := c.Secret(ctx, name)
		switch {
		case errors.Is(err, agent.ErrNotFound):
			missing = append(missing, name)
		case err != nil:
			return nil, fmt.Errorf("secret %s: %w", name, err)
		default:
			out[name] = string(v)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &MissingSecretsError{Server: server, Names: missing}
	}
	return out, nil
}

// target is a resolved server: its configuration and static headers.
type target struct {
	ref     string // what the user named it (name or URL)
	sc      agent.ServerConfig
	headers http.Header // static headers, values loaded from the store
}

// display is the name the user knows the server by.
func (t *target) display() string {
	if t.sc.Name != "" {
		return t.sc.Name
	}
	return t.ref
}

// resolve asks the agent for server's configuration and loads the secrets
// its headers reference.
func resolve(ctx context.Context, c *ipc.Client, server string) (*target, error) {
	sc, err := c.ResolveServer(ctx, server)
	if err != nil {
		return nil, err
	}
	t := &target{ref: server, sc: sc}
	if len(sc.Headers) == 0 {
		return t, nil
	}
	refs := make([]string, 0, len(sc.Headers))
	for _, ref := range sc.Headers {
		refs = append(refs, ref)
	}
	vals, err := secrets(ctx, c, t.display(), refs)
	if err != nil {
		return nil, err
	}
	t.headers = make(http.Header)
	for h, ref := range sc.Headers {
		name, _ := config.SecretRef(ref)
		t.headers.Set(h, vals[name])
	}
	return t, nil
}

// transport returns the RoundTripper for requests to t: static headers for
// an API-key server, else an AuthTransport (token per request, from
// tokens when not nil, refresh on 401, login, step-up on 403), under a
// guard that refuses any other origin, so a token is never sent to a server
// it was not issued for.
func (t *target) transport(c *ipc.Client, account string, base http.RoundTripper, tokens *tokenCache, login func(context.Context, []string) error) (http.RoundTripper, error) {
	if _, err := url.Parse(t.sc.URL); err != nil {
		return nil, fmt.Errorf("server URL: %w", err)
	}
	base = cmp.Or(base, http.DefaultTransport)
	rt := base
	if len(t.headers) > 0 {
		rt = &headerTransport{h: t.headers, base: rt}
	} else {
		account = cmp.Or(account, t.sc.Account)
		at := &AuthTransport{Client: c, Server: t.ref, Account: account, Base: rt, Login: login}
		if tokens != nil {
			at.Token = tokens.Token
		}
		rt = at
	}
	return &originGuard{server: t.sc.URL, base: rt}, nil
}

// headerTransport adds static headers (API keys) to every request.
type headerTransport struct {
	h    http.Header
	base http.RoundTripper
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}

// originGuard refuses requests to any origin but the server's
// (ipc.CheckOrigin): a legacy SSE server's endpoint event, or a redirect,
// must not carry the server's token or API key elsewhere (spec-checklist
// §N.1).
type originGuard struct {
	server string
	base   http.RoundTripper
}

func (g *originGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := ipc.CheckOrigin(g.server, req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.base.RoundTrip(req)
}
