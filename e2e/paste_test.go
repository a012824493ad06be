package e2e

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

// TestLoginNoBrowserPastedRedirect: `mcpkey login --no-browser` prints the
// authorization URL; the user signs in elsewhere and pastes the redirect URL
// the browser ended on. Blank lines and a line that belongs to no login are
// answered on stderr and the login keeps waiting; the real redirect URL
// completes it.
func TestLoginNoBrowserPastedRedirect(t *testing.T) {
	// No device flow: with one, --no-browser shows a user code instead.
	as := oauthtest.New(t, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: time.Hour, NoDevice: true})
	a := startAgent(t, "/bin/false")
	ctx := deadline(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, bin(t, "mcpkey"), "login", "--no-browser", as.MCPURL)
	cmd.Env = a.Env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(want string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stderr ended before a line with %q", want)
				}
				if strings.Contains(l, want) {
					return l
				}
				t.Logf("stderr: %s", l)
			case <-ctx.Done():
				t.Fatalf("no stderr line with %q", want)
			}
		}
	}
	authURL := strings.TrimSpace(next("    http")) // printed indented on a line of its own

	// Sign in "elsewhere": follow the AS's redirects up to the loopback
	// callback, without opening it.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := authURL
	for hop := 0; ; hop++ {
		if hop == 5 {
			t.Fatal("no redirect to the loopback callback")
		}
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %d: no redirect (%v)", resp.StatusCode, err)
		}
		u = loc.String()
		if loc.Hostname() == "127.0.0.1" && loc.Query().Get("code") != "" {
			break
		}
	}
	bogus := (&url.URL{Scheme: "http", Host: "127.0.0.1:1", Path: "/callback", RawQuery: "code=x&state=nobody"}).String()
	io.WriteString(stdin, "\n   \n"+bogus+"\n")
	next("no login is waiting for that redirect URL")
	io.WriteString(stdin, "  "+u+"  \n")
	for range lines { // drain until exit
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("login with a pasted redirect URL: %v", err)
	}
	if got := a.list(t); len(got) != 1 {
		t.Fatalf("sessions after the pasted login: %+v", got)
	}
}
