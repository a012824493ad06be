package ipc

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"

	"github.com/mcpkey/mcpkey/api"
)

// Transport returns an http.RoundTripper for requests to the MCP server
// server (a configured name or URL): it adds "Authorization: Bearer" with a
// token from the agent (for a key-bound session "Authorization: DPoP" and a
// DPoP proof the agent signed for this request, once more with the nonce of
// a use_dpop_nonce challenge) and, when the response is 401, reports the token as
// rejected (the agent refreshes once, however many callers report it) and
// retries once with the token the agent returns. A second 401 is returned as
// is. A DPoP-Nonce on any other response goes to the agent with the next
// token.get (NonceRelay), so the next proof carries it. base nil means
// http.DefaultTransport.
//
// A request to another origin than the server's URL (a redirect, say) is
// refused with an error wrapping ErrOtherOrigin, before any token is sent
// or refreshed (see CheckOrigin).
//
// Errors from the agent (api.ErrNeedsLogin, ErrNoAgent, ...) are returned
// as the RoundTrip error, wrapped. The token is never logged.
func (c *Client) Transport(server string, base http.RoundTripper) http.RoundTripper {
	base = cmp.Or(base, http.DefaultTransport)
	return &transport{c: c, server: server, base: base}
}

type transport struct {
	c      *Client
	server string
	base   http.RoundTripper
	nonces NonceRelay
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// The retry needs the body again. Requests built by http.NewRequest
	// have GetBody; others are buffered here.
	getBody := req.GetBody
	if req.Body != nil && req.Body != http.NoBody && getBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("mcpkey transport: read request body: %w", err)
		}
		getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	send := func(tok api.Token, first bool) (*http.Response, error) {
		r := req.Clone(ctx)
		if getBody != nil && (!first || req.GetBody == nil) {
			body, err := getBody()
			if err != nil {
				return nil, fmt.Errorf("mcpkey transport: replay request body: %w", err)
			}
			r.Body = body
			r.GetBody = getBody
		}
		if err := Authorize(r, tok); err != nil {
			closeBody(r)
			return nil, fmt.Errorf("mcpkey: %s: %w", t.server, err)
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil && tok.KeyBound() {
			t.nonces.Saw(r.URL, resp)
		}
		return resp, err
	}

	treq := DPoPRequest(api.TokenRequest{Server: t.server}, req)
	treq.DPoPNonce = t.nonces.Take(req.URL)
	tok, err := t.c.Token(ctx, treq)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("mcpkey: token for %s: %w", t.server, err)
	}
	resp, err := send(tok, true)
	if nonce, ok := DPoPNonce(resp); ok && err == nil && tok.KeyBound() {
		// The resource server wants a nonce in the proof: once more with it.
		treq.DPoPNonce = nonce
		if tok, err = t.c.Token(ctx, treq); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("mcpkey: token for %s: %w", t.server, err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp, err = send(tok, false)
	}
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	treq.DPoPNonce = t.nonces.Take(req.URL)
	treq.RejectedToken = tok.AccessToken
	fresh, err := t.c.Token(ctx, treq)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("mcpkey: token for %s after 401: %w", t.server, err)
	}
	if fresh.AccessToken == tok.AccessToken {
		return resp, nil // nothing newer to try
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return send(fresh, false)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
