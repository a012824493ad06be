// Command chromebrowser is a $BROWSER that signs in through a real headless
// Chromium (Debian's /usr/bin/chromium, driven by chromedp): it opens the
// authorization URL (or the agent's one-time launch address, which redirects
// to it), fills oidc-provider's development login form (any user, default
// "alice") and its consent form, and exits 0 once the browser has landed on
// the redirect_uri named in the authorization URL (the agent's loopback
// callback; /callback next to a launch address). Every step runs under one deadline (default 60 s).
//
// It logs to stderr only hosts, paths and steps: never a query string.
//
// Environment: CHROMEBROWSER_USER (login name, default alice),
// CHROMEBROWSER_CHROMIUM (browser path, default /usr/bin/chromium),
// CHROMEBROWSER_TIMEOUT (Go duration, default 60s).
package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chromebrowser <authorization-url>")
		os.Exit(2)
	}
	timeout := 60 * time.Second
	if s := os.Getenv("CHROMEBROWSER_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chromebrowser: bad CHROMEBROWSER_TIMEOUT")
			os.Exit(2)
		}
		timeout = d
	}
	user := envOr("CHROMEBROWSER_USER", "alice")
	exe := envOr("CHROMEBROWSER_CHROMIUM", "/usr/bin/chromium")
	if err := run(os.Args[1], exe, user, timeout); err != nil {
		fmt.Fprintf(os.Stderr, "chromebrowser: %v\n", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(authURL, exe, user string, timeout time.Duration) error {
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("not an http(s) url")
	}
	redirect := u.Query().Get("redirect_uri")
	if redirect == "" && strings.HasPrefix(u.Path, "/login/") {
		// The agent's one-time launch address: it redirects to the
		// authorization URL, whose redirect_uri is the same listener's
		// /callback.
		redirect = u.Scheme + "://" + u.Host + "/callback"
	}
	if redirect == "" {
		return errors.New("authorization url has no redirect_uri")
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox)...)
	defer cancelAlloc()
	// No deadline on this context: it owns the browser process.
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		return fmt.Errorf("start %s: %w", exe, err)
	}
	ctx, cancel := context.WithTimeout(browser, timeout)
	defer cancel()

	fmt.Fprintf(os.Stderr, "chromebrowser: opening %s://%s%s\n", u.Scheme, u.Host, u.Path)
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL)); err != nil {
		return fmt.Errorf("navigate: %w", err)
	}
	// Each form is submitted once. While a submitted page navigates away its
	// old DOM can linger for a moment (a new URL, the old form): a click that
	// then loses its node is retried on the next tick, not treated as fatal.
	done := map[string]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			return fmt.Errorf("read location: %w", err)
		}
		if strings.HasPrefix(loc, redirect) {
			fmt.Fprintln(os.Stderr, "chromebrowser: reached the redirect uri")
			return nil
		}
		switch {
		case !done["login"] && exists(ctx, `input[name="login"]`):
			fmt.Fprintln(os.Stderr, "chromebrowser: filling the login form")
			err = chromedp.Do(ctx,
				chromedp.SendKeys(`input[name="login"]`, user),
				chromedp.SendKeys(`input[name="password"]`, "any"),
				chromedp.Click(`button[type="submit"]`))
			done["login"] = err == nil
		case !done["consent"] && exists(ctx, `input[name="prompt"][value="consent"]`):
			fmt.Fprintln(os.Stderr, "chromebrowser: approving consent")
			err = chromedp.Do(ctx, chromedp.Click(`button[type="submit"]`))
			done["consent"] = err == nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("submit form: %w", err)
			}
			fmt.Fprintf(os.Stderr, "chromebrowser: form submit did not complete (%v); retrying\n", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the browser never reached the redirect uri: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// exists reports whether the current page has an element matching sel,
// without waiting for one to appear.
func exists(ctx context.Context, sel string) bool {
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", sel)))
	return err == nil && ok
}
