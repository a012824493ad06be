package oauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestJWTExpiry(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	hdr := enc(`{"alg":"RS256"}`)
	cases := []struct {
		name  string
		token string
		want  time.Time
		ok    bool
	}{
		{"int exp", hdr + "." + enc(`{"exp":1700000000,"aud":"x"}`) + ".sig", time.Unix(1700000000, 0), true},
		{"float exp", hdr + "." + enc(`{"exp":1700000000.5}`) + ".sig", time.Unix(1700000000, 5e8), true},
		{"padded payload", hdr + "." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1700000001}`)) + ".sig", time.Unix(1700000001, 0), true},
		{"no exp", hdr + "." + enc(`{"sub":"x"}`) + ".sig", time.Time{}, false},
		{"string exp", hdr + "." + enc(`{"exp":"soon"}`) + ".sig", time.Time{}, false},
		{"negative exp", hdr + "." + enc(`{"exp":-5}`) + ".sig", time.Time{}, false},
		{"opaque", "abcdef", time.Time{}, false},
		{"JWE", "a.b.c.d.e", time.Time{}, false},
		{"bad base64", hdr + ".!!!.sig", time.Time{}, false},
		{"not JSON", hdr + "." + enc("nope") + ".sig", time.Time{}, false},
		{"huge", hdr + "." + strings.Repeat("A", maxJWTLen) + ".sig", time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := JWTExpiry(tc.token)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: = %v, %t; want %v, %t", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSanitizeRemote(t *testing.T) {
	if got := sanitizeRemote("a\x1b[2Jb\nc\u00e9", 100); got != "a?[2Jb?c?" {
		t.Errorf("= %q", got)
	}
	if got := sanitizeRemote(strings.Repeat("x", 10), 4); got != "xxxx..." {
		t.Errorf("= %q", got)
	}
}
