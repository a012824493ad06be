package policy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScriptArg(t *testing.T) {
	for _, c := range []struct {
		cmdline []string
		want    string
	}{
		{[]string{"python3", "app.py", "--x"}, "app.py"},
		{[]string{"node", "--inspect", "app.js"}, "app.js"},
		{[]string{"python3", "-u", "--", "app.py"}, "app.py"},
		{[]string{"python3", "-c", "print(1)"}, ""},
		{[]string{"python3", "-m", "http.server"}, ""},
		{[]string{"sh"}, ""},
		{nil, ""},
	} {
		if got := scriptArg(c.cmdline); got != c.want {
			t.Errorf("scriptArg(%q) = %q, want %q", c.cmdline, got, c.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	if got := Printable("a\x1b]0;pwned\x07b\r\nc\u009bd"); got != "a?]0;pwned?b??c?d" {
		t.Fatalf("Printable = %q", got)
	}
}

// TestFingerprintFollowsContentAndFile: a copy or a changed file has
// another fingerprint; the same file unchanged keeps its own.
func TestFingerprintFollowsContentAndFile(t *testing.T) {
	var fp fingerprints
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sh"), filepath.Join(dir, "b.sh")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("echo hi\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fa, err := fp.of(a)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := fp.of(a); again != fa {
		t.Fatalf("the same file: %s then %s", fa, again)
	}
	if fb, _ := fp.of(b); fb == fa {
		t.Fatal("a copy has the original's fingerprint")
	}
	if err := os.WriteFile(a, []byte("echo bye\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, _ := fp.of(a); changed == fa {
		t.Fatal("a changed file kept its fingerprint")
	}
	if _, err := fp.of(dir); err == nil {
		t.Fatal("a directory has a fingerprint")
	}
}

func TestDeniedByCoversTheChain(t *testing.T) {
	c := Caller{Exe: "/usr/bin/mcpkey", Parents: []Process{{PID: 2, Exe: "/usr/bin/bash"}, {PID: 1, Exe: "/usr/bin/python3.12"}}}
	if got := deniedBy([]string{"/usr/bin/python3*"}, c); got != "/usr/bin/python3.12" {
		t.Fatalf("deniedBy = %q, want the python3 grandparent", got)
	}
	if got := deniedBy([]string{"/opt/*"}, c); got != "" {
		t.Fatalf("deniedBy = %q, want none", got)
	}
}
