package config

import (
	"errors"
	"strings"
	"testing"
)

// TestGrantSettingsErrors: each mistake in the grant keys is reported at
// its file:line:col, and no secret is quoted.
func TestGrantSettingsErrors(t *testing.T) {
	const srv = "[servers.m]\nurl = 'https://a.example/mcp'\n"
	for _, tt := range []struct{ name, src, want string }{
		{"unknown grant", srv + "grant = 'password'\n",
			`config.toml:3:9: servers.m.grant: expected one of authorization_code, client_credentials, jwt_bearer, enterprise, got "password"`},
		{"client_credentials without a client id", srv + "grant = 'client_credentials'\nclient_secret_file = '/s'\n",
			`config.toml:1:1: servers.m: grant = "client_credentials" needs client_id (the client registered with the authorization server)`},
		{"client_credentials without a credential", srv + "grant = 'client_credentials'\nclient_id = 'bot'\n",
			`config.toml:1:1: servers.m: grant = "client_credentials" needs client_secret_file, client_secret = "secret:NAME" or client_key`},
		{"a secret and a key", srv + "grant = 'client_credentials'\nclient_id = 'bot'\nclient_secret = 'secret:bot'\nclient_key = '/k.pem'\n",
			`config.toml:1:1: servers.m: set only one of client_secret_file, client_secret and client_key`},
		{"literal secret refused", srv + "grant = 'client_credentials'\nclient_id = 'bot'\nclient_secret = 'hunter2'\n",
			"config.toml:5:1: servers.m.client_secret: a client secret must not be written in the config\n" +
				"hint: put it in a file and set client_secret_file = \"PATH\", or store it with `mcpkey secret set`"},
		{"bad key algorithm", srv + "grant = 'client_credentials'\nclient_id = 'bot'\nclient_key = '/k.pem'\nclient_key_alg = 'HS256'\n",
			`config.toml:6:18: servers.m.client_key_alg: expected one of ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA, got "HS256"`},
		{"key without its grant", srv + "client_key = '/k.pem'\n",
			`config.toml:3:1: servers.m.client_key: client_key is used only with grant = "client_credentials" or "enterprise"`},
		{"workload token without jwt_bearer", srv + "grant = 'client_credentials'\nclient_id = 'b'\nclient_secret = 'secret:b'\nworkload_token_env = 'TOK'\n",
			`config.toml:6:1: servers.m.workload_token_env: workload_token_env is used only with grant = "jwt_bearer"`},
		{"jwt_bearer with both sources", srv + "grant = 'jwt_bearer'\nclient_id = 'w'\nworkload_token_file = '/t'\nworkload_token_env = 'TOK'\n",
			`config.toml:1:1: servers.m: grant = "jwt_bearer" needs exactly one of workload_token_file and workload_token_env`},
		{"jwt_bearer bad variable name", srv + "grant = 'jwt_bearer'\nclient_id = 'w'\nworkload_token_env = 'CI JOB'\n",
			`config.toml:5:22: servers.m.workload_token_env: invalid environment variable name "CI JOB"`},
		{"enterprise without idp", srv + "grant = 'enterprise'\nclient_id = 'c'\n",
			`config.toml:1:1: servers.m: grant = "enterprise" needs idp (the name of an [idps.NAME] table)`},
		{"enterprise naming a missing idp", srv + "grant = 'enterprise'\nclient_id = 'c'\nidp = 'corp'\n[idps.other]\nissuer = 'https://login.example'\nclient_id = 'x'\n",
			`config.toml:5:7: servers.m.idp: no [idps.corp] table in this file (have other)`},
		{"idp missing client_id", "[idps.corp]\nissuer = 'https://login.example'\n",
			`config.toml:1:1: idps.corp: missing client_id`},
		{"idp issuer over http", "[idps.corp]\nissuer = 'http://login.example'\nclient_id = 'x'\n",
			`config.toml:2:10: idps.corp.issuer: expected an https issuer URL (http only on loopback) without query or fragment, got "http://login.example"`},
		{"idp unknown key", "[idps.corp]\nissuer = 'https://login.example'\nclient_id = 'x'\nid_tokn_file = '/x'\n",
			`config.toml:4:1: idps.corp.id_tokn_file: unknown key (did you mean "id_token_file"?)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("config.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; settings %+v", s)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var se *SettingsError
			if !errors.As(err, &se) || se.Line == 0 {
				t.Errorf("%v: want a *SettingsError with a position", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("the error quotes the secret")
			}
		})
	}
}

// TestGrantSettings: the grant keys as the agent reads them.
func TestGrantSettings(t *testing.T) {
	s, err := Parse("/etc/mcpkey/config.toml", []byte(`
[servers.k8s]
url = "https://a.example/mcp"
grant = "jwt_bearer"
client_id = "w"
workload_token_file = "token"

[servers.bot]
url = "https://b.example/mcp"
grant = "client_credentials"
client_id = "bot"
client_key = "secret:bot-key"

[servers.browser]
url = "https://c.example/mcp"
grant = "authorization_code"
`))
	if err != nil {
		t.Fatal(err)
	}
	if g := s.Servers["k8s"].GrantSettings; g.Grant != "jwt_bearer" || g.WorkloadTokenFile != "/etc/mcpkey/token" {
		t.Errorf("k8s: %+v", g)
	}
	if g := s.Servers["bot"].GrantSettings; g.Grant != "client_credentials" || g.ClientKey != "secret:bot-key" {
		t.Errorf("bot: %+v", g)
	}
	if g := s.Servers["browser"].GrantSettings; g.Grant != "" {
		t.Errorf("authorization_code is the browser sign-in, the zero grant: %+v", g)
	}
}
