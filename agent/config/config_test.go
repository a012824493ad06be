package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSettingsExample(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	s, err := Load(filepath.Join("..", "testdata", "config", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &Settings{
		Path:             filepath.Join("..", "testdata", "config", "example.toml"),
		Backend:          "auto",
		KeyringTimeout:   10 * time.Second,
		LogLevel:         slog.LevelInfo,
		RefreshMargin:    time.Minute,
		LoginWait:        5 * time.Minute,
		WSListen:         "127.0.0.1:0",
		WSAllowedOrigins: []string{"chrome-extension://abcdefghijklmnopabcdefghijklmnop"},
		Approval:         ApprovalPrompt,
		Allow:            []string{"/usr/bin/claude*", "/usr/local/bin/code"},
		Deny:             []string{"/tmp/*"},
		Remember:         8 * time.Hour,
		ApprovalTimeout:  time.Minute,
		LockAfterIdle:    30 * time.Minute,
		Servers: map[string]ServerSettings{
			"github": {
				Name:             "github",
				URL:              "https://api.example.com/mcp",
				Scopes:           []string{"repo:read", "user"},
				Account:          "work",
				ClientID:         "mcpkey-desktop",
				ClientSecretFile: filepath.Join(home, ".config/mcpkey/github.secret"),
				RedirectPort:     33418,
				Confirm:          &yes,
				Approval:         ApprovalPolkit,
				Allow:            []string{"/usr/bin/claude"},
				Remember:         time.Hour,
				Env:              map[string]string{"GITHUB_TOKEN": "token", "GITHUB_ORG_KEY": "secret:github-org-key"},
			},
			"search": {
				Name:    "search",
				URL:     "https://search.example.com/mcp",
				Headers: map[string]string{"X-API-Key": "secret:search-key"},
			},
			"lab": {
				Name:                "lab",
				URL:                 "http://10.0.0.5:8080/mcp",
				AllowPrivateNetwork: true,
				ClientMetadataURL:   "https://example.com/mcpkey/client.json",
			},
			"bank": {Name: "bank", URL: "https://mcp.bank.example/mcp", DPoP: &yes},
			"hydra-demo": {
				Name:               "hydra-demo",
				URL:                "https://mcp.example.org/mcp",
				ResourceAsAudience: true,
			},
			"ci-bot": {
				Name: "ci-bot", URL: "https://mcp.example.com/mcp", ClientID: "ci-bot",
				GrantSettings: GrantSettings{Grant: "client_credentials", ClientSecretRef: "secret:ci-bot-secret"},
			},
			"ci-bot-jwt": {
				Name: "ci-bot-jwt", URL: "https://mcp2.example.com/mcp", ClientID: "ci-bot",
				GrantSettings: GrantSettings{Grant: "client_credentials", ClientKey: filepath.Join(home, ".config/mcpkey/ci-bot.key.pem"), ClientKeyAlg: "ES256"},
			},
			"k8s": {
				Name: "k8s", URL: "https://mcp3.example.com/mcp", ClientID: "payments-workload",
				GrantSettings: GrantSettings{Grant: "jwt_bearer", WorkloadTokenFile: "/var/run/secrets/tokens/mcp-token"},
			},
			"wiki": {
				Name: "wiki", URL: "https://wiki.example.com/mcp", ClientID: "mcpkey-wiki",
				ClientSecretFile: filepath.Join(home, ".config/mcpkey/wiki.secret"),
				GrantSettings:    GrantSettings{Grant: "enterprise", IdP: "corp"},
			},
		},
		Issuers: map[string]IssuerSettings{
			"https://auth.example.org/": {ResourceAsAudience: true},
		},
		IdPs: map[string]IdPSettings{
			"corp": {Name: "corp", Issuer: "https://login.example.com", ClientID: "mcpkey",
				ClientSecretFile: filepath.Join(home, ".config/mcpkey/corp-idp.secret"), Scopes: []string{"openid", "email"},
				IDTokenFile: filepath.Join(home, ".cache/corp-sso/id_token")},
		},
		RestrictedSockets: []RestrictedSocketSettings{
			{Path: filepath.Join(home, ".ssh/mcpkey-devbox.sock"), Servers: []string{"github"}, TTL: 8 * time.Hour},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("example.toml:\n got %+v\nwant %+v", s, want)
		for name := range want.Servers {
			if !reflect.DeepEqual(s.Servers[name], want.Servers[name]) {
				t.Errorf("servers.%s:\n got %+v\nwant %+v", name, s.Servers[name], want.Servers[name])
			}
		}
	}
}

func TestParseSettingsErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax: unterminated string", "backend = \"auto\n",
			`config.toml:1:16: basic strings cannot have new lines`},
		{"syntax: missing value", "log_level = 'info'\nbackend =",
			`config.toml:2:9: expected value, not end of input`},
		{"syntax: duplicate key", "backend = \"auto\"\nbackend = \"file\"\n",
			`config.toml:2:1: key backend is already defined`},
		{"unknown top-level key with suggestion", "log_level = 'info'\nbakend = 'file'\n",
			`config.toml:2:1: bakend: unknown key (did you mean "backend"?)`},
		{"unknown key without suggestion", "colour = 'blue'\n",
			`config.toml:1:1: colour: unknown key`},
		{"unknown server key", "[servers.github]\nurl = 'https://a.example/mcp'\n    scope = ['x']\n",
			`config.toml:3:5: servers.github.scope: unknown key (did you mean "scopes"?)`},
		{"literal client secret refused", "[servers.github]\nurl = 'https://a.example/mcp'\nclient_secret = 'hunter2'\n",
			"config.toml:3:1: servers.github.client_secret: a client secret must not be written in the config\n" +
				"hint: put it in a file and set client_secret_file = \"PATH\", or store it with `mcpkey secret set`"},
		{"url: wrong scheme", "[servers.github]\nurl = \"ftp://x\"\n",
			`config.toml:2:7: servers.github.url: expected an absolute http(s) URL, got "ftp://x"`},
		{"url: relative", "[servers.github]\nurl = \"api.example.com/mcp\"\n",
			`config.toml:2:7: servers.github.url: expected an absolute http(s) URL, got "api.example.com/mcp"`},
		{"url: fragment", "[servers.github]\nurl = \"https://a.example/mcp#x\"\n",
			`config.toml:2:7: servers.github.url: a fragment is not allowed in a server URL, got "https://a.example/mcp#x"`},
		{"url: userinfo redacted", "[servers.github]\nurl = \"https://bob:hunter2@a.example/mcp\"\n",
			`config.toml:2:7: servers.github.url: userinfo is not allowed in a server URL, got "https://REDACTED@a.example/mcp"`},
		{"url: missing", "[servers.github]\naccount = 'me'\n",
			`config.toml:1:1: servers.github: missing url`},
		{"url: wrong type", "[servers.github]\nurl = 5\n",
			`config.toml:2:7: servers.github.url: expected a string, got an integer`},
		{"server name", "[servers.GitHub]\nurl = 'https://a.example/mcp'\n",
			`config.toml:1:1: servers.GitHub: invalid server name "GitHub" (use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)`},
		{"server not a table", "servers = { github = 'https://a.example/mcp' }\n",
			`config.toml:1:22: servers.github: expected a table, got a string`},
		{"duration: not a duration", "keyring_timeout = '10'\n",
			`config.toml:1:19: keyring_timeout: expected a duration such as "30s", "5m" or "8h", got "10"`},
		{"duration: zero", "login_wait = '0s'\n",
			`config.toml:1:14: login_wait: expected a positive duration, got "0s" (leave the key out for the default)`},
		{"duration: negative", "[servers.a]\nurl = 'https://a.example'\nremember = '-1h'\n",
			`config.toml:3:12: servers.a.remember: expected a positive duration, got "-1h"`},
		{"backend", "backend = 'plaintext'\n",
			`config.toml:1:11: backend: unknown backend "plaintext" (expected one of auto, secret-service, kwallet, keychain, wincred, keyctl, pass, file, memory)`},
		{"log level", "log_level = 'loud'\n",
			`config.toml:1:13: log_level: expected one of debug, info, warn, error, got "loud"`},
		{"bool type", "confirm = 'yes'\n",
			`config.toml:1:11: confirm: expected true or false, got a string`},
		{"approval: unknown prompt", "approval = 'touch'\n",
			`config.toml:1:12: approval: expected one of prompt, polkit, touchid, got "touch"`},
		{"approval: per server, not a string", "[servers.x]\nurl = 'https://x.example/mcp'\napproval = true\n",
			`config.toml:3:12: servers.x.approval: expected a string, got a boolean`},
		{"ws_listen not loopback", "ws_listen = '0.0.0.0:8080'\n",
			`config.toml:1:13: ws_listen: the WebSocket listens on loopback only (127.0.0.1, ::1 or localhost), got "0.0.0.0"`},
		{"ws_listen no port", "ws_listen = '127.0.0.1'\n",
			`config.toml:1:13: ws_listen: expected HOST:PORT on loopback such as "127.0.0.1:0", got "127.0.0.1"`},
		{"ws origin wildcard, multi-line array", "ws_allowed_origins = [\n  'chrome-extension://abc',\n  '*',\n]\n",
			`config.toml:3:3: ws_allowed_origins[1]: expected an origin such as "chrome-extension://ID" (scheme://host, no wildcard), got "*"`},
		{"allow: bad glob", "allow = ['/usr/bin/[']\n",
			`config.toml:1:10: allow[0]: invalid pattern "/usr/bin/["`},
		{"redirect_port range", "[servers.a]\nurl = 'https://a.example'\nredirect_port = 70000\n",
			`config.toml:3:17: servers.a.redirect_port: expected a port between 0 and 65535, got 70000`},
		{"scope with space", "[servers.a]\nurl = 'https://a.example'\nscopes = ['read', 'a b']\n",
			`config.toml:3:19: servers.a.scopes[1]: invalid scope "a b" (no spaces, quotes or backslashes)`},
		{"client_metadata_url not https", "[servers.a]\nurl = 'https://a.example'\nclient_metadata_url = 'http://example.com/c.json'\n",
			`config.toml:3:23: servers.a.client_metadata_url: expected an https URL with a path (http only on loopback), got "http://example.com/c.json"`},
		{"header value must be a secret reference, inline table", "[servers.a]\nurl = 'https://a.example'\nheaders = { \"X-API-Key\" = \"abc123\" }\n",
			"config.toml:3:27: servers.a.headers.X-API-Key: expected \"secret:NAME\" (store the value with `mcpkey secret set NAME`; header values are never written in the config)"},
		{"header name", "[servers.a]\nurl = 'https://a.example'\nheaders = { \"X Key\" = \"secret:k\" }\n",
			`config.toml:3:13: servers.a.headers."X Key": invalid header name "X Key"`},
		{"env value", "[servers.a]\nurl = 'https://a.example'\n[servers.a.env]\nGITHUB_TOKEN = 'ghp_abc'\n",
			`config.toml:4:16: servers.a.env.GITHUB_TOKEN: expected "token" or "secret:NAME"`},
		{"env name", "[servers.a]\nurl = 'https://a.example'\n[servers.a.env]\n\"1X\" = 'token'\n",
			`config.toml:4:1: servers.a.env.1X: invalid environment variable name "1X"`},
		{"dotted keys", "servers.a.url = 'gopher://x'\n",
			`config.toml:1:17: servers.a.url: expected an absolute http(s) URL, got "gopher://x"`},
		{"inline tables", "servers = { github = { url = \"ftp://x\" } }\n",
			`config.toml:1:30: servers.github.url: expected an absolute http(s) URL, got "ftp://x"`},
		{"restricted socket: unknown server and missing path", "[servers.a]\nurl = 'https://a.example'\n\n[[restricted_socket]]\npath = '/run/x.sock'\nservers = ['a']\n\n[[restricted_socket]]\nservers = ['a', 'nope']\n",
			"config.toml:8:1: restricted_socket[1]: missing path\n" +
				`config.toml:9:17: restricted_socket[1].servers[1]: "nope" is neither a configured server nor a URL`},
		{"issuer: unknown key", "[issuers.\"https://auth.example/\"]\nresource_as_audiense = true\n",
			`config.toml:2:1: issuers."https://auth.example/".resource_as_audiense: unknown key (did you mean "resource_as_audience"?)`},
		{"issuer: not a URL", "[issuers.auth]\nresource_as_audience = true\n",
			`config.toml:1:1: issuers.auth: expected an issuer URL as the table name, got "auth"`},
		{"resource_as_audience: not a bool", "[servers.h]\nurl = 'https://a.example/mcp'\nresource_as_audience = 'yes'\n",
			`config.toml:3:24: servers.h.resource_as_audience: expected true or false, got a string`},
		{"restricted socket: not an array of tables", "restricted_socket = 'x'\n",
			`config.toml:1:21: restricted_socket: expected [[restricted_socket]] tables, got a string`},
		{"a multi-line string holding key-like text does not confuse positions",
			"[servers.a]\nurl = 'https://a.example'\naccount = \"\"\"\nurl = 1\n\"\"\"\ncolor = 1\n",
			`config.toml:6:1: servers.a.color: unknown key`},
		{"columns count characters, not bytes", "# héllo\n  \"bäckend\" = 1\n",
			`config.toml:2:3: "bäckend": unknown key (did you mean "backend"?)`},
		// A value of the wrong type stops decoding: it is reported alone.
		{"a type error is reported alone", "log_level = 3\nkeyring_timeout = '0s'\n",
			"config.toml:1:13: log_level: expected a string, got an integer"},
		{"wrong type in an array of tables", "[[restricted_socket]]\npath = '/x'\nservers = 'a'\n",
			`config.toml:3:11: restricted_socket[0].servers: expected an array of strings, got a string`},
		{"several errors, sorted by position", "colr = 3\nkeyring_timeout = '0s'\n[servers.x]\nurl = 'ftp://x'\n",
			"config.toml:1:1: colr: unknown key\n" +
				"config.toml:2:19: keyring_timeout: expected a positive duration, got \"0s\" (leave the key out for the default)\n" +
				"config.toml:4:7: servers.x.url: expected an absolute http(s) URL, got \"ftp://x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("config.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; settings %+v", s)
			}
			if s != nil {
				t.Errorf("settings returned with the error: %+v", s)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var se *SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a *SettingsError", err)
			}
			if se.Path != "config.toml" || se.Line == 0 || se.Column == 0 {
				t.Errorf("SettingsError %+v: want Path config.toml and a line and column", se)
			}
			for _, secret := range []string{"hunter2", "ghp_abc", "abc123"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error message contains the secret %q", secret)
				}
			}
		})
	}
}

func TestParseSettingsEmptyAndValidVariants(t *testing.T) {
	s, err := Parse("config.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, &Settings{Path: "config.toml"}) {
		t.Errorf("empty file: got %+v", s)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	src := `
passphrase_file = "pass"
log_level = "debug"
ws_listen = "[::1]:9000"
lock_after_idle = "0s"
[servers.local]
url = "http://127.0.0.1:8080"
client_metadata_url = "http://localhost:3000/client.json"
confirm = false
allow = []
`
	s, err = Parse(cfg, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "pass"); s.PassphraseFile != want {
		t.Errorf("relative passphrase_file: got %q, want %q (relative to the config's directory)", s.PassphraseFile, want)
	}
	if s.LogLevel != slog.LevelDebug || s.WSListen != "[::1]:9000" || s.LockAfterIdle != 0 {
		t.Errorf("got log level %v, ws_listen %q, lock_after_idle %v", s.LogLevel, s.WSListen, s.LockAfterIdle)
	}
	local := s.Servers["local"]
	if local.Confirm == nil || *local.Confirm || local.Allow == nil || len(local.Allow) != 0 {
		t.Errorf("confirm = false and allow = [] must be kept as explicit overrides: %+v", local)
	}
}

func TestLoadSettingsMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "config.toml")
	s, err := Load(path)
	if err != nil {
		t.Fatalf("missing config: %v", err)
	}
	if !reflect.DeepEqual(s, &Settings{Path: path}) {
		t.Errorf("missing config: got %+v, want empty settings", s)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("a directory as config: got %v, want a read error", err)
	}
}

func TestSettingsErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		e    SettingsError
		want string
	}{
		{SettingsError{Path: "c.toml", Line: 12, Column: 5, Msg: "x: bad"}, "c.toml:12:5: x: bad"},
		{SettingsError{Path: "c.toml", Line: 12, Msg: "x: bad"}, "c.toml:12: x: bad"},
		{SettingsError{Path: "c.toml", Msg: "x: bad"}, "c.toml: x: bad"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestCanonicalServerURL(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "https://mcp.example.com/mcp", want: "https://mcp.example.com/mcp"},
		{in: "HTTPS://MCP.Example.COM/MCP", want: "https://mcp.example.com/MCP"},
		{in: "https://mcp.example.com:443/mcp", want: "https://mcp.example.com/mcp"},
		{in: "http://mcp.example.com:80/mcp", want: "http://mcp.example.com/mcp"},
		{in: "https://mcp.example.com:8443", want: "https://mcp.example.com:8443"},
		{in: "http://127.0.0.1:443/x", want: "http://127.0.0.1:443/x"},
		{in: "https://mcp.example.com", want: "https://mcp.example.com"},
		{in: "https://mcp.example.com/", want: "https://mcp.example.com/"},
		{in: "https://mcp.example.com/mcp/", want: "https://mcp.example.com/mcp/"},
		{in: "https://mcp.example.com/mcp#frag", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/a%2Fb?x=1&y=%41", want: "https://mcp.example.com/a%2Fb?x=1&y=%41"},
		{in: "https://[::1]:443/mcp", want: "https://[::1]/mcp"},
		{in: "http://[FE80::1]:8080/mcp", want: "http://[fe80::1]:8080/mcp"},
		{in: "mcp.example.com", err: `invalid server URL "mcp.example.com": expected an absolute http(s) URL`},
		{in: "/mcp", err: `invalid server URL "/mcp": expected an absolute http(s) URL`},
		{in: "ftp://mcp.example.com", err: `invalid server URL "ftp://mcp.example.com": expected an absolute http(s) URL`},
		{in: "https:///mcp", err: `invalid server URL "https:///mcp": expected an absolute http(s) URL with a host`},
		{in: "https://u:hunter2@mcp.example.com", err: `invalid server URL "https://REDACTED@mcp.example.com": userinfo is not allowed`},
	} {
		got, err := CanonicalServerURL(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%q: got (%q, %v), want error %q", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%q: got (%q, %v), want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSettingsServer(t *testing.T) {
	s, err := Parse("config.toml", []byte(`
[servers.github]
url = "https://API.example.com:443/mcp"
account = "work"
[servers.other]
url = "https://api.example.com/mcp/"
[servers.dup]
url = "https://api.example.com/mcp"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ref, want string
	}{
		{"github", "github"},
		{"other", "other"},
		{"https://API.example.com:443/mcp", "github"},      // exact string beats canonical
		{"https://api.example.com/mcp", "dup"},             // exact again
		{"HTTPS://api.EXAMPLE.com/mcp", "dup"},             // canonical: dup and github match; sorted names, dup first
		{"https://api.example.com:443/mcp/", "other"},      // trailing slash is significant
		{"https://api.example.com/mcp#section", "dup"},     // fragment dropped
		{"https://api.example.com/mcp2", ""},               // not configured
		{"nope", ""},                                       // unknown name
		{"GitHub", ""},                                     // names are exact
		{"", ""},                                           //
		{"https://user:pw@api.example.com/mcp", ""},        // invalid URL
		{"http://api.example.com/mcp", ""},                 // scheme matters
		{"https://api.example.com:8443/mcp", ""},           // port matters
		{"https://api.example.com/MCP", ""},                // path case matters
		{"https://api.example.com/mcp?tenant=1", ""},       // query matters
		{"https://api.example.com/mcp/../mcp", ""},         // no path normalisation
		{"https://api.example.com./mcp", ""},               // trailing-dot host differs
		{"https://api.example.com/mcp/#", "other"},         // empty fragment dropped
		{"https://api.example.com:443/mcp#frag", "dup"},    //
		{"https://API.EXAMPLE.COM:443/mcp/#frag", "other"}, //
	} {
		got, ok := s.Server(tt.ref)
		if ok != (tt.want != "") || got.Name != tt.want {
			t.Errorf("Server(%q) = %q, %v; want %q", tt.ref, got.Name, ok, tt.want)
		}
		if tt.want != "" && !reflect.DeepEqual(got, s.Servers[tt.want]) {
			t.Errorf("Server(%q) = %+v, want the whole entry %+v", tt.ref, got, s.Servers[tt.want])
		}
		if strings.Contains(tt.ref, "://") {
			if name := s.NameFor(tt.ref); name != tt.want {
				t.Errorf("NameFor(%q) = %q, want %q", tt.ref, name, tt.want)
			}
		}
	}
	if got := s.NameFor("github"); got != "" {
		t.Errorf("NameFor takes URLs only; NameFor(github) = %q", got)
	}

	var none *Settings
	if _, ok := none.Server("github"); ok {
		t.Error("nil settings resolved a server")
	}
	if _, ok := (&Settings{}).Server("https://api.example.com/mcp"); ok {
		t.Error("empty settings resolved a server")
	}
	if got := none.NameFor("https://api.example.com/mcp"); got != "" {
		t.Errorf("nil settings: NameFor = %q", got)
	}
}

func TestApprovalPolicy(t *testing.T) {
	s, err := Parse("config.toml", []byte(`
confirm = false
allow = ["/usr/bin/claude"]
deny = ["/tmp/*"]
remember = "2h"
approval_timeout = "30s"
[servers.strict]
url = "https://strict.example/mcp"
confirm = true
approval = "polkit"
allow = []
deny = ["/usr/bin/curl"]
remember = "10m"
[servers.plain]
url = "https://plain.example/mcp"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		server string
		want   ApprovalPolicy
	}{
		{"strict", ApprovalPolicy{Confirm: true, Approval: ApprovalPolkit, Allow: []string{}, Deny: []string{"/tmp/*", "/usr/bin/curl"}, Remember: 10 * time.Minute, Timeout: 30 * time.Second}},
		{"https://strict.example/mcp", ApprovalPolicy{Confirm: true, Approval: ApprovalPolkit, Allow: []string{}, Deny: []string{"/tmp/*", "/usr/bin/curl"}, Remember: 10 * time.Minute, Timeout: 30 * time.Second}},
		{"plain", ApprovalPolicy{Approval: ApprovalPrompt, Allow: []string{"/usr/bin/claude"}, Deny: []string{"/tmp/*"}, Remember: 2 * time.Hour, Timeout: 30 * time.Second}},
		{"https://unconfigured.example/mcp", ApprovalPolicy{Approval: ApprovalPrompt, Allow: []string{"/usr/bin/claude"}, Deny: []string{"/tmp/*"}, Remember: 2 * time.Hour, Timeout: 30 * time.Second}},
	} {
		if got := s.ApprovalPolicy(tt.server); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ApprovalPolicy(%q):\n got %+v\nwant %+v", tt.server, got, tt.want)
		}
	}
	var none *Settings
	if got, want := none.ApprovalPolicy("x"), (ApprovalPolicy{Approval: ApprovalPrompt, Remember: DefaultRemember, Timeout: DefaultApprovalTimeout}); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
}

func TestSecretRef(t *testing.T) {
	for in, want := range map[string]string{"secret:github-key": "github-key", "secret:": "", "secret:-x": "", "token": "", "secret:a b": ""} {
		name, ok := SecretRef(in)
		if name != want && ok || ok != (want != "") {
			t.Errorf("SecretRef(%q) = %q, %v; want %q", in, name, ok, want)
		}
	}
}

func TestExampleConfigIsDocumented(t *testing.T) {
	// Every key the parser knows appears in the example the README quotes.
	data, err := os.ReadFile(filepath.Join("..", "testdata", "config", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	top, servers, sockets := Keys()
	for _, k := range slices.Concat(top, servers, sockets) {
		if !strings.Contains(string(data), k) {
			t.Errorf("example.toml does not mention %q", k)
		}
	}
}

// FuzzParse: any input gives settings or a *SettingsError, never a panic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "backend = 'auto'\n", "[servers.a]\nurl = 'https://a.example'\nheaders = { a = [1, [2]] }\n",
		"[[restricted_socket]]\n[[restricted_socket.x]]\n", "a.b.c = { d = [ { e = 1 } ] }\n",
		"servers = [ { url = 1 } ]\n", "[issuers.\"x\"]\n[issuers.\"x\".y]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("config.toml", data)
		if err != nil {
			var se *SettingsError
			if s != nil || !errors.As(err, &se) {
				t.Fatalf("got %+v, %T %v", s, err, err)
			}
		}
	})
}
