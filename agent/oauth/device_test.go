package oauth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

func TestDevicePollHonoursPendingAndSlowDown(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{
		DeviceResponses: []string{"authorization_pending", "slow_down", "authorization_pending"},
		DeviceInterval:  5,
	})
	c := publicClient(s)
	as := s.AuthServer()
	synctest.Test(t, func(t *testing.T) {
		hc := inProcessClient(s)
		start := time.Now()
		d, err := oauth.StartDevice(t.Context(), hc, as, c, s.Resource, []string{"mcp"})
		if err != nil {
			t.Fatal(err)
		}
		if d.UserCode == "" || !strings.HasPrefix(d.VerificationURI, s.Issuer) || d.Interval != 5*time.Second ||
			!d.ExpiresAt.Equal(start.Add(600*time.Second)) {
			t.Errorf("device auth = %+v", d)
		}
		ts, err := d.Poll(t.Context(), hc)
		if err != nil {
			t.Fatal(err)
		}
		if !s.ValidAccessToken(ts.AccessToken) || ts.RefreshToken == "" {
			t.Error("device login gave unusable tokens")
		}
		var offsets []time.Duration
		for _, p := range s.DevicePolls() {
			offsets = append(offsets, p.Sub(start))
		}
		want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second}
		if len(offsets) != len(want) {
			t.Fatalf("polls at %v, want %v", offsets, want)
		}
		for i := range want {
			if offsets[i] != want[i] {
				t.Errorf("polls at %v, want %v", offsets, want)
				break
			}
		}
		if d.Interval != 10*time.Second {
			t.Errorf("interval after slow_down = %v", d.Interval)
		}
		for _, tr := range s.TokenRequests() {
			if tr.Form.Get("resource") != s.Resource || tr.Form.Get("client_id") != c.ClientID {
				t.Errorf("poll form = %v", tr.Form)
			}
		}
	})
}

func TestDeviceFinalErrors(t *testing.T) {
	for _, code := range []string{"access_denied", "expired_token"} {
		t.Run(code, func(t *testing.T) {
			s := oauthtest.New(t, oauthtest.Options{DeviceResponses: []string{"authorization_pending", code}})
			c := publicClient(s)
			as := s.AuthServer()
			synctest.Test(t, func(t *testing.T) {
				hc := inProcessClient(s)
				d, err := oauth.StartDevice(t.Context(), hc, as, c, s.Resource, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = d.Poll(t.Context(), hc)
				var te *oauth.TokenError
				if !errors.As(err, &te) || te.Code != code {
					t.Fatalf("Poll = %v, want %s", err, code)
				}
				if n := len(s.DevicePolls()); n != 2 {
					t.Errorf("%d polls, want 2", n)
				}
			})
		})
	}
}

func TestDeviceLocalExpiryAndCancel(t *testing.T) {
	pending := make([]string, 100)
	for i := range pending {
		pending[i] = "authorization_pending"
	}
	s := oauthtest.New(t, oauthtest.Options{DeviceResponses: pending, DeviceInterval: 5, DeviceExpiresIn: 12})
	c := publicClient(s)
	as := s.AuthServer()
	synctest.Test(t, func(t *testing.T) {
		hc := inProcessClient(s)
		d, err := oauth.StartDevice(t.Context(), hc, as, c, s.Resource, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Poll(t.Context(), hc)
		var te *oauth.TokenError
		if !errors.As(err, &te) || te.Code != "expired_token" {
			t.Fatalf("Poll = %v, want a local expired_token", err)
		}
		if n := len(s.DevicePolls()); n > 3 {
			t.Errorf("%d polls for a 12 s code at 5 s intervals", n)
		}

		d2, err := oauth.StartDevice(t.Context(), hc, as, c, s.Resource, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 7*time.Second)
		defer cancel()
		if _, err := d2.Poll(ctx, hc); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Poll with an ending ctx = %v", err)
		}
	})
}

func TestDeviceUnsupportedAndRedacted(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{NoDevice: true})
	c := publicClient(s)
	if _, err := oauth.StartDevice(testCtx(t), nil, s.AuthServer(), c, s.Resource, nil); !errors.Is(err, oauth.ErrDeviceUnsupported) {
		t.Errorf("= %v", err)
	}

	s2 := oauthtest.New(t, oauthtest.Options{})
	c2 := publicClient(s2)
	d, err := oauth.StartDevice(testCtx(t), nil, s2.AuthServer(), c2, s2.Resource, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, _ = d.Poll(ctx, nil) // canceled before any request
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("device", "auth", d)
	if !strings.Contains(buf.String(), "device_code=REDACTED") || !strings.Contains(buf.String(), d.UserCode) {
		t.Errorf("log = %s", buf.String())
	}
}

func TestDeviceBacksOffOnServerErrors(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{DeviceInterval: 5})
	c := publicClient(s)
	as := s.AuthServer()
	synctest.Test(t, func(t *testing.T) {
		hc := inProcessClient(s)
		d, err := oauth.StartDevice(t.Context(), hc, as, c, s.Resource, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.SetTokenFailure(503)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Second)
		defer cancel()
		_, err = d.Poll(ctx, hc)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Poll = %v", err)
		}
		// Polls at 5 s, then backing off: 15, 35, 75 (gaps 10, 20, 40).
		if n := s.Requests("/token"); n != 4 {
			t.Errorf("%d token requests in 100 s, want 4", n)
		}
		s.SetTokenFailure(0)
		ts, err := d.Poll(t.Context(), hc)
		if err != nil || ts.AccessToken == "" {
			t.Errorf("Poll after recovery = %v", err)
		}
	})
}
