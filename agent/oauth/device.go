package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrDeviceUnsupported means the authorization server advertises no
// device_authorization_endpoint.
var ErrDeviceUnsupported = errors.New("authorization server does not support the device authorization grant")

const (
	deviceGrantType       = "urn:ietf:params:oauth:grant-type:device_code"
	defaultDeviceInterval = 5 * time.Second  // RFC 8628 §3.2
	slowDownStep          = 5 * time.Second  // RFC 8628 §3.5
	maxDeviceBackoff      = 60 * time.Second // cap for network-error backoff
	defaultDeviceLifetime = 10 * time.Minute // when expires_in is missing
)

// DeviceAuth is a started device authorization (RFC 8628 §3.2). Show the
// user UserCode and VerificationURI (or open VerificationURIComplete), then
// call Poll. The device code stays unexported and out of logs.
type DeviceAuth struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string        // "" when the server sent none
	Interval                time.Duration // current polling interval; slow_down raises it
	ExpiresAt               time.Time

	deviceCode string
	tokenURL   string
	client     Client
	resource   string
	opts       requestOptions
	scopes     []string
}

// LogValue redacts the device code.
func (d *DeviceAuth) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user_code", d.UserCode),
		slog.String("verification_uri", d.VerificationURI),
		slog.Duration("interval", d.Interval),
		slog.Time("expires_at", d.ExpiresAt),
		slog.String("device_code", "REDACTED"),
	)
}

// StartDevice requests a device code at the device authorization endpoint
// with scope (omitted when empty) and resource (verbatim), authenticating as
// the client's method says. hc nil means http.DefaultClient.
// opts add parameters to the device and token requests (WithAudience) and
// DPoP proofs to the token requests (WithDPoP).
func StartDevice(ctx context.Context, hc *http.Client, as *AuthServer, c *Client, resource string, scopes []string, opts ...RequestOption) (*DeviceAuth, error) {
	if err := checkClientFor(as, c); err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	if as.DeviceAuthorizationEndpoint == "" {
		return nil, ErrDeviceUnsupported
	}
	if err := checkEndpointURL("device authorization endpoint", as.DeviceAuthorizationEndpoint); err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	if err := checkEndpointURL("token endpoint", as.TokenEndpoint); err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	if resource == "" {
		return nil, errors.New("device authorization: no resource")
	}
	form := url.Values{"resource": {resource}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	o := applyOptions(opts)
	o.addTo(form)
	status, ctype, body, err := postTokenForm(ctx, hc, as.DeviceAuthorizationEndpoint, form, c)
	if err != nil {
		return nil, fmt.Errorf("device authorization at %s: %w", as.DeviceAuthorizationEndpoint, err)
	}
	raw, derr := decodeTokenBody(ctype, body)
	if !status2xx(status) || (derr == nil && rawString(raw, "error") != "") {
		return nil, fmt.Errorf("device authorization at %s: %w", as.DeviceAuthorizationEndpoint, bodyTokenError(status, raw, []string{c.ClientSecret}))
	}
	if derr != nil {
		return nil, fmt.Errorf("device authorization: %w", derr)
	}
	d := &DeviceAuth{
		deviceCode:              rawString(raw, "device_code"),
		UserCode:                rawString(raw, "user_code"),
		VerificationURI:         rawString(raw, "verification_uri"),
		VerificationURIComplete: rawString(raw, "verification_uri_complete"),
		Interval:                defaultDeviceInterval,
		ExpiresAt:               time.Now().Add(defaultDeviceLifetime),
		tokenURL:                as.TokenEndpoint,
		client:                  *c,
		resource:                resource,
		opts:                    o,
		scopes:                  append([]string(nil), scopes...),
	}
	if d.VerificationURI == "" {
		d.VerificationURI = rawString(raw, "verification_url") // a common misspelling
	}
	if d.deviceCode == "" || d.UserCode == "" || d.VerificationURI == "" {
		return nil, errors.New("device authorization: answer lacks device_code, user_code or verification_uri")
	}
	// These URLs are shown to the user or opened: only http(s).
	if err := checkShownURL(d.VerificationURI); err != nil {
		return nil, fmt.Errorf("device authorization: verification_uri: %w", err)
	}
	if d.VerificationURIComplete != "" && checkShownURL(d.VerificationURIComplete) != nil {
		d.VerificationURIComplete = ""
	}
	d.UserCode = sanitizeRemote(d.UserCode, maxErrCodeLen)
	if secs, ok := rawSeconds(raw, "interval"); ok && secs >= 1 {
		d.Interval = time.Duration(secs) * time.Second
	}
	if secs, ok := rawSeconds(raw, "expires_in"); ok && secs > 0 {
		d.ExpiresAt = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return d, nil
}

func checkShownURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("not an http(s) URL")
	}
	return nil
}

// Poll polls the token endpoint every Interval until the user approves
// (returning the tokens), denies (access_denied), the code expires
// (expired_token, or ExpiresAt passes), or ctx ends. authorization_pending
// keeps polling; slow_down adds 5 s to Interval for good (RFC 8628 §3.5);
// network errors and 5xx answers back off exponentially up to 60 s. Errors
// from the server are *TokenError. Poll is not safe for concurrent use.
func (d *DeviceAuth) Poll(ctx context.Context, hc *http.Client) (*TokenSet, error) {
	backoff := time.Duration(0)
	for {
		wait := d.Interval
		if backoff > wait {
			wait = backoff
		}
		if left := time.Until(d.ExpiresAt); left <= 0 {
			return nil, fmt.Errorf("device authorization: %w", &TokenError{Code: "expired_token", Description: "the device code expired before the login was approved"})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		form := url.Values{
			"grant_type":  {deviceGrantType},
			"device_code": {d.deviceCode},
			"resource":    {d.resource},
		}
		d.opts.addTo(form)
		ts, err := tokenRequest(ctx, d.opts.client(hc), d.tokenURL, form, &d.client, d.scopes, d.deviceCode)
		if err == nil {
			return ts, nil
		}
		if te, ok := tokenErrorFrom(err); ok {
			switch te.Code {
			case "authorization_pending":
				backoff = 0
				continue
			case "slow_down":
				backoff = 0
				d.Interval += slowDownStep
				continue
			}
		}
		if IsTransient(err) && ctx.Err() == nil {
			backoff = min(max(2*backoff, 2*d.Interval), maxDeviceBackoff)
			continue
		}
		return nil, fmt.Errorf("device authorization: %w", err)
	}
}
