package cli_test

import (
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc/cli"
)

// TestLoginGrantFlags: `mcpkey login` flag combinations that cannot work
// are refused before anything is sent.
func TestLoginGrantFlags(t *testing.T) {
	for _, tc := range []struct {
		mode, key, alg, assertion, idp, want string
	}{
		{"password", "", "", "", "", `unknown grant "password"`},
		{"", "", "", "/etc/hostname", "", "--assertion-file is used only with --grant jwt_bearer"},
		{"jwt_bearer", "", "", "", "corp", "--idp is used only with --grant enterprise"},
		{"client_credentials", "", "HS256", "", "", `--client-key-alg "HS256": expected one of`},
		{"jwt_bearer", "", "", "/nonexistent/token", "", "--assertion-file: stat /nonexistent/token"},
	} {
		_, err := cli.LoginGrant(tc.mode, tc.key, tc.alg, tc.assertion, tc.idp)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoginGrant(%q, …) = %v, want %q", tc.mode, err, tc.want)
		}
	}
	g, err := cli.LoginGrant("jwt_bearer", "", "", "/etc/hostname", "")
	if err != nil || g.Mode != api.GrantJWTBearer || g.AssertionFile != "/etc/hostname" {
		t.Errorf("LoginGrant(jwt_bearer) = %+v, %v", g, err)
	}
}
