package launch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/ipc"
)

// AuthTransport is an http.RoundTripper for MCP clients that act for the
// user: it adds the agent's token to every request and resolves what the
// resource server answers:
//
//   - 401: reports the token to the agent as rejected and retries with
//     the token it answers (the agent refreshes once, however many callers
//     report the same token); when the agent answers needs_login, it calls
//     Login (with the scopes of the 401's challenge too) and retries. The
//     agent decides: a freshly issued token that is rejected gets one
//     extra sign-in, then agent.ErrTokenRejected, which is returned.
//   - 401 with a DPoP use_dpop_nonce challenge (a key-bound session): asks
//     the agent once more for a proof with the server's nonce and retries.
//     A DPoP-Nonce on any other response goes to the agent with the next
//     token.get (ipc.NonceRelay), so the next proof carries it.
//   - 403 with error="insufficient_scope": calls Login with the union of
//     the scopes asked so far and the challenge's scopes (a step-up), then
//     retries.
//
// At most MaxAuthAttempts logins are started for one transport, so a server
// that never accepts ends in an error instead of a loop (spec-checklist §K).
// A request to another origin than the token's server (a redirect) is
// refused before a token is attached or refreshed (CheckOrigin).
// Client.Transport is the simple form without Login.
type AuthTransport struct {
	// Client is the agent client. Required.
	Client *ipc.Client
	// Server is the MCP server (configured name or URL); Account selects a
	// session.
	Server, Account string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Login runs a login for the given scopes (nil = whatever the agent
	// selects). nil means no logins: the agent's needs_login error is
	// returned.
	Login func(ctx context.Context, scopes []string) error
	// MaxAuthAttempts caps logins; 0 means 3.
	MaxAuthAttempts int
	// Token, if set, replaces Client.Token (a caller-side cache that asks
	// the agent again for a RejectedToken).
	Token func(ctx context.Context, req agent.TokenRequest) (agent.Token, error)

	mu       sync.Mutex // guards scopes, attempts and server
	scopes   []string   // scopes asked for so far (step-up union)
	attempts int
	server   string // the URL the last token was issued for
	nonces   ipc.NonceRelay
}

var _ http.RoundTripper = (*AuthTransport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *AuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	base := cmp.Or(t.Base, http.DefaultTransport)
	// A redirect to another origin follows a response from the server,
	// so its URL is known: refuse before asking for a token, which could
	// start a login.
	t.mu.Lock()
	server := t.server
	t.mu.Unlock()
	if server != "" {
		if err := ipc.CheckOrigin(server, req.URL); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	body, err := replayableBody(req)
	if err != nil {
		return nil, err
	}
	token := t.Token
	if token == nil {
		token = t.Client.Token
	}
	var rejected, nonce string
	nonced := false   // a use_dpop_nonce challenge was answered already
	var want []string // the scopes of the last 401's challenge
	for {
		t.mu.Lock()
		scopes := t.scopes
		t.mu.Unlock()
		treq := ipc.DPoPRequest(agent.TokenRequest{Server: t.Server, Account: t.Account, Scopes: scopes, RejectedToken: rejected}, req)
		treq.DPoPNonce = nonce
		if nonce == "" {
			treq.DPoPNonce = t.nonces.Take(req.URL)
		}
		tok, err := token(ctx, treq)
		if err != nil {
			var nl *agent.NeedsLoginError
			if errors.As(err, &nl) && t.login(ctx, agent.UnionScopes(nl.Scopes, want)) == nil {
				rejected = ""
				continue
			}
			return nil, err
		}
		t.mu.Lock()
		t.server = tok.Server
		t.mu.Unlock()
		r2 := req.Clone(ctx)
		r2.Body, r2.GetBody = body()
		if err := ipc.Authorize(r2, tok); err != nil {
			closeBody(r2)
			return nil, err
		}
		resp, err := base.RoundTrip(r2)
		if err != nil {
			return nil, err
		}
		if tok.KeyBound() {
			t.nonces.Saw(r2.URL, resp)
		}
		if n, ok := ipc.DPoPNonce(resp); ok && tok.KeyBound() && !nonced {
			// RFC 9449 §9: the resource server wants its nonce in the
			// proof; ask the agent for one with it, once.
			drain(resp)
			nonce, nonced, rejected = n, true, ""
			continue
		}
		nonce = ""
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			if rejected == tok.AccessToken {
				// The agent answered the very token reported: nothing
				// newer to try.
				return resp, nil
			}
			if ch, _ := oauth.ParseChallenge(resp.StatusCode, resp.Header); ch != nil && len(ch.Scopes) > 0 {
				want = t.union(ch.Scopes)
			}
			drain(resp)
			rejected = tok.AccessToken
			continue
		case http.StatusForbidden:
			ch, _ := oauth.ParseChallenge(resp.StatusCode, resp.Header)
			if ch == nil || ch.Error != "insufficient_scope" {
				return resp, nil
			}
			// No progress possible: the token already carries every scope
			// the server asks for, so another login would only loop.
			if len(ch.Scopes) == 0 || agent.HasScopes(tok.Scopes, ch.Scopes) {
				return resp, nil
			}
			scopes := t.union(append(append([]string(nil), tok.Scopes...), ch.Scopes...))
			if t.login(ctx, scopes) != nil {
				return resp, nil
			}
			t.mu.Lock()
			t.scopes = scopes
			t.mu.Unlock()
			drain(resp)
			rejected = ""
			continue
		}
		return resp, nil
	}
}

// union returns the scopes asked so far plus more.
func (t *AuthTransport) union(more []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return agent.UnionScopes(t.scopes, more)
}

// login starts a login unless Login is nil or the attempts are used up.
func (t *AuthTransport) login(ctx context.Context, scopes []string) error {
	if t.Login == nil {
		return errors.New("no login function")
	}
	max := cmp.Or(t.MaxAuthAttempts, 3)
	t.mu.Lock()
	if t.attempts >= max {
		t.mu.Unlock()
		return fmt.Errorf("gave up after %d authorization attempts for %s", max, t.Server)
	}
	t.attempts++
	t.mu.Unlock()
	return t.Login(ctx, scopes)
}

// replayableBody returns a function yielding a fresh copy of req's body for
// each attempt.
func replayableBody(req *http.Request) (func() (io.ReadCloser, func() (io.ReadCloser, error)), error) {
	if req.Body == nil || req.Body == http.NoBody {
		return func() (io.ReadCloser, func() (io.ReadCloser, error)) { return req.Body, req.GetBody }, nil
	}
	if req.GetBody != nil {
		return func() (io.ReadCloser, func() (io.ReadCloser, error)) {
			b, err := req.GetBody()
			if err != nil {
				b = io.NopCloser(errReader{err})
			}
			return b, req.GetBody
		}, nil
	}
	data, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return func() (io.ReadCloser, func() (io.ReadCloser, error)) { b, _ := get(); return b, get }, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// drain discards a response that will be retried, so its connection is
// reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
