package wipe

import (
	"strings"
	"testing"
)

func TestOwnAndString(t *testing.T) {
	lit := "a-literal-token"
	s := Own(lit)
	String(s)
	if s != strings.Repeat("\x00", len(lit)) {
		t.Errorf("String left %q", s)
	}
	if lit != "a-literal-token" {
		t.Errorf("wiping the owned copy changed the original: %q", lit)
	}
	// One-byte strings share static memory: left alone, no crash.
	b := []byte{'x'}
	one := string(b)
	String(one)
	if one != "x" || string([]byte{'x'}) != "x" {
		t.Error("a one-byte string was wiped")
	}
	String("") // nothing to do
}
