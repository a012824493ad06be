package ipc

import (
	"reflect"
	"strings"
	"testing"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mcpkey/mcpkey/agent"
)

var plainTok = agent.Token{
	AccessToken: strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 20),
	TokenType:   "Bearer",
	ExpiresAt:   time.Date(2030, 1, 2, 3, 4, 5, 678900000, time.UTC),
	Scopes:      []string{"mcp:read", "mcp:write"},
	Server:      "https://mcp.example.com/mcp",
	Account:     "work",
}

// TestAppendTokenMatchesLibrary: appendToken writes the general encoder's
// bytes, or declines.
func TestAppendTokenMatchesLibrary(t *testing.T) {
	with := func(f func(*agent.Token)) agent.Token {
		tok := plainTok
		f(&tok)
		return tok
	}
	cases := []struct {
		name  string
		tok   agent.Token
		plain bool
	}{
		{"plain", plainTok, true},
		{"nil scopes", with(func(t *agent.Token) { t.Scopes = nil }), true},
		{"empty scopes", with(func(t *agent.Token) { t.Scopes = []string{} }), true},
		{"empty strings", agent.Token{}, true},
		{"zone", with(func(t *agent.Token) { t.ExpiresAt = t.ExpiresAt.In(time.FixedZone("x", 5*3600+1800)) }), true},
		{"local", with(func(t *agent.Token) { t.ExpiresAt = time.Now() }), true},
		{"quote", with(func(t *agent.Token) { t.Account = `a"b` }), false},
		{"backslash", with(func(t *agent.Token) { t.AccessToken = `a\b` }), false},
		{"html", with(func(t *agent.Token) { t.Server = "https://x/?a=1&b=<2>" }), false},
		{"control", with(func(t *agent.Token) { t.TokenType = "a\nb" }), false},
		{"del", with(func(t *agent.Token) { t.TokenType = "a\x7fb" }), false},
		{"unicode", with(func(t *agent.Token) { t.Account = "zoë\u2028" }), false},
		{"scope quote", with(func(t *agent.Token) { t.Scopes = []string{"a", `"`} }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Append(nil, c.tok, json.EscapeHTML|json.SortMapKeys)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendToken([]byte("prefix"), &c.tok)
			if ok != c.plain {
				t.Fatalf("appendToken ok = %v, want %v", ok, c.plain)
			}
			if ok && string(got) != "prefix"+string(want) {
				t.Errorf("appendToken = %s\nlibrary     = %s", got[6:], want)
			}
		})
	}
}

func TestAppendTokenParamsMatchesLibrary(t *testing.T) {
	for _, p := range []TokenParams{
		{Server: "https://x/mcp"},
		{Server: "s", Account: "a", Scopes: []string{"r", "w"}, MinTTLSeconds: 30, RejectedToken: "tok"},
		{Server: "s", Scopes: []string{}},
		{Server: "s", MinTTLSeconds: -5},
		{Server: "s&t"},
		{Server: "s", Scopes: []string{"a\\b"}},
	} {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendTokenParams(nil, &p)
		if ok && string(got) != string(want) {
			t.Errorf("appendTokenParams(%+v) = %s, library %s", p, got, want)
		}
		if !ok && plainString(p.Server) && !strings.ContainsAny(strings.Join(p.Scopes, ""), `\"<>&`) {
			t.Errorf("appendTokenParams(%+v) declined a plain value", p)
		}
	}
}

// checkParseTokenGet fails when parseTokenGet accepts data and the general
// decoder reads it differently (or not at all).
func checkParseTokenGet(t *testing.T, data []byte) bool {
	id, p, ok := parseTokenGet(data)
	if !ok {
		return false
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("parseTokenGet accepted %q, the library refuses it: %v", data, err)
	}
	if m.JSONRPC != "2.0" || m.Method != MethodTokenGet || string(m.ID) != string(id) || !validID(m.ID) {
		t.Fatalf("parseTokenGet(%q): id %s; library: %+v", data, id, m)
	}
	var lp TokenParams
	if err := decodeParams(m.Params, &lp); err != nil {
		t.Fatalf("parseTokenGet accepted params the library refuses: %q: %v", data, err)
	}
	if !reflect.DeepEqual(lp, p) {
		t.Fatalf("parseTokenGet(%q) = %+v, library %+v", data, p, lp)
	}
	return true
}

var tokenGetSeeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"https://mcp.example.com/mcp","scopes":["mcp:read"]}}`,
	` { "id" : "abc" , "method":"token.get" ,"jsonrpc":"2.0", "params":{"server":"s","account":"a","scopes":[],"min_ttl_seconds":30} } `,
	`{"jsonrpc":"2.0","id":0,"method":"token.get","params":{"server":"s","min_ttl_seconds":0}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"s","server":"t"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"s","rejected_token":"x"}}`,
	`{"jsonrpc":"2.0","id":01,"method":"token.get","params":{"server":"s"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"s\u0041"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"Server":"s"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"s"}}x`,
	`{"jsonrpc":"1.0","id":1,"method":"token.get","params":{"server":"s"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"agent.status","params":{"server":"s"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"s","min_ttl_seconds":99999999999999999999}}`,
}

func TestParseTokenGet(t *testing.T) {
	accepted := 0
	for _, s := range tokenGetSeeds {
		if checkParseTokenGet(t, []byte(s)) {
			accepted++
		}
	}
	if accepted != 3 {
		t.Errorf("parseTokenGet accepted %d seeds, want the first 3", accepted)
	}
}

// FuzzParseTokenGet: whatever parseTokenGet accepts, the general decoder
// reads the same way.
func FuzzParseTokenGet(f *testing.F) {
	for _, s := range tokenGetSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkParseTokenGet(t, data) })
}

func checkParseTokenReply(t *testing.T, data []byte) bool {
	var got agent.Token
	if !parseTokenReply(data, &got) {
		return false
	}
	var want agent.Token
	if err := decodeReply(MethodTokenGet, data, &want); err != nil {
		t.Fatalf("parseTokenReply accepted %q, the library refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseTokenReply(%q) = %+v, library %+v", data, got, want)
	}
	return true
}

func tokenReplySeeds(t testing.TB) []string {
	b, err := json.Append([]byte(`{"jsonrpc":"2.0","id":7,"result":`), plainTok, json.EscapeHTML|json.SortMapKeys)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		string(b) + "}",
		`{"jsonrpc":"2.0","id":1,"result":{"access_token":"a","token_type":"Bearer","expires_at":"2030-01-01T00:00:00+05:30","scopes":null,"server":"s","account":""}}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"scopes":[]}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"access_token":"a\"b"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"expires_at":"yesterday"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"access_token":"a","access_token":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"extra":1}}`,
	}
}

func TestParseTokenReply(t *testing.T) {
	accepted := 0
	for _, s := range tokenReplySeeds(t) {
		if checkParseTokenReply(t, []byte(s)) {
			accepted++
		}
	}
	if accepted != 4 {
		t.Errorf("parseTokenReply accepted %d seeds, want the first 4", accepted)
	}
}

// FuzzParseTokenReply: whatever parseTokenReply accepts, the general
// decoder reads the same way.
func FuzzParseTokenReply(f *testing.F) {
	for _, s := range tokenReplySeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkParseTokenReply(t, data) })
}
