package oauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// ProtocolVersion is the MCP protocol version mcpkey announces in the
// MCP-Protocol-Version header of its probe and discovery requests (2025-03-26
// servers SHOULD get it on discovery; later ones on every request).
const ProtocolVersion = "2025-11-25"

// probeBody is an unauthenticated initialize request. Its only purpose is
// to draw the server's 401 and WWW-Authenticate challenge.
// probeBody is a request every protected MCP server must refuse without a
// token. Not initialize: some servers let initialize (and notifications)
// through unauthenticated and challenge only later requests, so an
// initialize probe would miss the challenge and its scope.
const probeBody = `{"jsonrpc":"2.0","id":1,"method":"ping"}`

// Probe sends an unauthenticated MCP ping request to serverURL and reports
// the server's challenge (spec-checklist §A).
//
// On 401 or 403 it returns the parsed Bearer challenge; a missing or
// unparsable WWW-Authenticate header gives a Challenge with only Status set,
// and discovery then falls back to the well-known URLs. On 2xx the server
// needs no authorization: Probe returns (nil, nil). Another 4xx (a server
// that wants a session first, say) gives a Challenge with only Status set, so
// discovery goes on with the well-known URLs; 5xx is an error. A nil hc means NewHTTPClient(HTTPOptions{}); the same holds for
// Discover and Register.
func Probe(ctx context.Context, hc *http.Client, serverURL string) (*Challenge, error) {
	if hc == nil {
		hc = NewHTTPClient(HTTPOptions{})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, strings.NewReader(probeBody))
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", serverURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", ProtocolVersion)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", serverURL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// No authorization needed. The body may be an open event stream;
		// close it unread.
		return nil, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		ch, err := ParseChallenge(resp.StatusCode, resp.Header)
		if err != nil {
			// A garbled header must not lock the user out: discovery can
			// still find PRM at the well-known URLs.
			return &Challenge{Status: resp.StatusCode}, nil
		}
		return ch, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return &Challenge{Status: resp.StatusCode}, nil
	default:
		return nil, fmt.Errorf("probe %s: unexpected status %s", serverURL, resp.Status)
	}
}

// ParseChallenge reads the Bearer challenge of a 401 or 403 answer's
// WWW-Authenticate header(s) with an RFC 9110 §11.6.1 parser (several
// challenges per header, quoted strings, escapes). It returns a Challenge
// with Status set even when there is no Bearer challenge, and an error only
// when the header is malformed. The first Bearer challenge wins, else the
// first DPoP one; Challenge.DPoP says whether DPoP was offered.
func ParseChallenge(status int, h http.Header) (*Challenge, error) {
	ch := &Challenge{Status: status}
	values := h.Values("WWW-Authenticate")
	if len(values) == 0 {
		return ch, nil
	}
	cs, err := oauthex.ParseWWWAuthenticate(values)
	if err != nil {
		return ch, fmt.Errorf("parse WWW-Authenticate: %w", err)
	}
	// The first Bearer challenge wins; a DPoP challenge (RFC 9449 §7.1)
	// says the resource wants key-bound tokens and is read the same way
	// when there is no Bearer one.
	var found *oauthex.Challenge
	bearer := false
	for i, c := range cs {
		switch c.Scheme { // the parser lower-cases schemes and keys
		case "bearer":
			if !bearer {
				found = &cs[i]
			}
			bearer = true
		case "dpop":
			if found == nil {
				found = &cs[i]
			}
			ch.DPoP = true
		}
	}
	if c := found; c != nil {
		ch.ResourceMetadata = c.Params["resource_metadata"]
		ch.Scopes = strings.Fields(c.Params["scope"])
		if len(ch.Scopes) == 0 {
			ch.Scopes = nil
		}
		ch.Error = c.Params["error"]
	}
	return ch, nil
}
