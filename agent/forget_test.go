package agent_test

import (
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// TestForgetWaitsForRefreshInFlight: a refresh in flight when the agent
// locks is not cancelled (its rotated refresh token must reach the store),
// lock waits for it, and the session it refreshed is not held afterwards;
// a refresh that ends after a logout writes nothing back.
func TestForgetWaitsForRefreshInFlight(t *testing.T) {
	for _, drop := range []string{"lock", "logout"} {
		t.Run(drop, func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute})
			f.login(agent.LoginRequest{})
			before, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
			if err != nil {
				t.Fatal(err)
			}
			entered, release := f.as.HoldRefreshes()
			defer release()
			f.clk.Advance(5*time.Minute + time.Second) // expired
			go f.token(agent.TokenRequest{})
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("no refresh reached the authorization server")
			}
			done := make(chan error, 1)
			go func() {
				if drop == "lock" {
					done <- f.a.Lock(t.Context(), "")
				} else {
					_, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL, KeepRemote: true})
					done <- err
				}
			}()
			if drop == "lock" {
				select {
				case err := <-done:
					t.Fatalf("lock returned (%v) while a refresh was in flight", err)
				case <-time.After(200 * time.Millisecond):
				}
			}
			release()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal(drop + " did not return")
			}
			after, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
			if drop == "logout" {
				if err == nil {
					t.Fatalf("a refresh that ended after logout wrote the session back")
				}
				return
			}
			if err != nil || after.RefreshToken == before.RefreshToken {
				t.Fatalf("the rotated refresh token did not reach the store (err %v)", err)
			}
			// Unlock reads the rotated grant back: it still refreshes.
			if err := f.a.Unlock(t.Context(), ""); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(5*time.Minute + time.Second)
			if _, err := f.token(agent.TokenRequest{}); err != nil {
				t.Fatalf("refresh after unlock: %v", err)
			}
		})
	}
}
