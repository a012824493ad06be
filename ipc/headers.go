package ipc

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpkey/mcpkey/api"
)

// HeaderLines returns the request header lines ("Authorization: …" and,
// for a key-bound token, "DPoP: …") a program sends with tok on a request
// of method to rawURL: what `mcpkey token SERVER --dpop METHOD URL` prints.
// They come from Authorize, the one place tokens are attached.
func HeaderLines(tok api.Token, method, rawURL string) (string, error) {
	r, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("%w: bad method or URL: %w", api.ErrInvalidRequest, err)
	}
	if err := Authorize(r, tok); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("Authorization: " + r.Header.Get("Authorization") + "\n")
	if p := r.Header.Get("DPoP"); p != "" {
		b.WriteString("DPoP: " + p + "\n")
	}
	return b.String(), nil
}
