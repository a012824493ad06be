package agent_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// BenchmarkRefreshAtExpiry: N callers ask for the same expired token at
// once; refreshes/expiry is how many refresh requests reached the AS per
// expiry (target: always 1).
func BenchmarkRefreshAtExpiry(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("callers=%d", n), func(b *testing.B) {
			clk := newClock()
			as := oauthtest.New(b, oauthtest.Options{Now: clk.Now, ScopesSupported: []string{"mcp:tools"}, AccessTokenTTL: 5 * time.Minute})
			a, err := agent.New(b.Context(), agent.Config{Store: store.NewMemory(), Now: clk.Now, OpenURL: as.Browser()})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			if _, err := a.Login(b.Context(), agent.LoginRequest{Server: as.MCPURL}, nil); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				clk.Advance(5*time.Minute + time.Second)
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						if _, err := a.Token(b.Context(), agent.TokenRequest{Server: as.MCPURL}); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(as.Refreshes())/float64(b.N), "refreshes/expiry")
		})
	}
}

// BenchmarkLogin is one whole login against a local AS with an
// auto-approving browser step: probe, discovery, registration (the first
// time; reused after), PKCE authorization through the loopback callback,
// code exchange, persisting.
func BenchmarkLogin(b *testing.B) {
	as := oauthtest.New(b, oauthtest.Options{ScopesSupported: []string{"mcp:tools"}})
	a, err := agent.New(b.Context(), agent.Config{Store: store.NewMemory(), OpenURL: as.Browser()})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := a.Login(b.Context(), agent.LoginRequest{Server: as.MCPURL}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
