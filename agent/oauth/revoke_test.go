package oauth_test

import (
	"errors"
	"testing"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

func TestRevokeEndsTheGrant(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	as := s.AuthServer()
	access, rt := s.Grant(c.ClientID, nil)
	if err := oauth.Revoke(testCtx(t), nil, as, c, rt, "refresh_token"); err != nil {
		t.Fatal(err)
	}
	rv := s.Revocations()
	if len(rv) != 1 || rv[0].Get("token") != rt || rv[0].Get("token_type_hint") != "refresh_token" || rv[0].Get("client_id") != c.ClientID {
		t.Errorf("revocation request = %v", rv)
	}
	if s.ActiveGrants() != 0 || s.ValidAccessToken(access) {
		t.Error("grant survived revocation")
	}
	if _, err := oauth.Refresh(testCtx(t), nil, as, c, s.Resource, rt, nil); !oauth.IsInvalidGrant(err) {
		t.Errorf("refresh after revocation = %v", err)
	}
}

func TestRevokeUnsupportedAndFailing(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{NoRevocation: true})
	c := publicClient(s)
	if err := oauth.Revoke(testCtx(t), nil, s.AuthServer(), c, "tok", ""); !errors.Is(err, oauth.ErrRevocationUnsupported) {
		t.Errorf("= %v", err)
	}
	as := errorAS(t, 503, "application/json", `{"error":"temporarily_unavailable"}`)
	err := oauth.Revoke(testCtx(t), nil, as, &oauth.Client{ClientID: "app"}, "tok", "")
	if !oauth.IsTransient(err) {
		t.Errorf("503 = %v", err)
	}
}
