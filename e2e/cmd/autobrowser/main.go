// Command autobrowser is a $BROWSER for authorization servers that approve
// at once (the conformance suite's mock AS): it GETs the URL it is given
// (the agent's one-time launch address, or an authorization URL) and
// follows each redirect by hand (at most 5) until an answer that is not a
// redirect (the agent's loopback callback), as a browser would. It exits 0
// once that answer came, whatever its status; non-zero when the first URL
// did not redirect or a hop could not be reached.
//
// It logs to stderr only hosts, paths and status codes: never a query
// string, which carries the code and state.
//
// Usage: BROWSER=/path/to/autobrowser (the agent runs "autobrowser <url>").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: autobrowser <authorization-url>")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "autobrowser: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("not an http(s) url")
	}
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Follow redirects by hand, as a browser would: the agent's one-time
	// launch address to the authorization endpoint, that to the callback.
	const maxHops = 5
	for hop := 0; ; hop++ {
		resp, err := get(ctx, client, u)
		if err != nil {
			return fmt.Errorf("request to %s: %w", redact(u), err)
		}
		fmt.Fprintf(os.Stderr, "autobrowser: %s answered %d\n", redact(u), resp.StatusCode)
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			if hop == 0 {
				return fmt.Errorf("authorization endpoint %s did not redirect (status %d)", redact(u), resp.StatusCode)
			}
			return nil
		}
		if hop == maxHops {
			return fmt.Errorf("more than %d redirects", maxHops)
		}
		if u, err = u.Parse(loc); err != nil {
			return errors.New("redirect location is not a url")
		}
	}
}

func get(ctx context.Context, client *http.Client, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}

// redact drops the query and fragment, which carry codes and state.
func redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.Path
}
