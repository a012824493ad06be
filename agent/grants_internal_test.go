package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadAssertion: a workload token is read anew from its file each
// time (trimmed), or from the environment; an empty, missing or oversized
// source is a clear error that never quotes the content.
func TestReadAssertion(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	os.WriteFile(f, []byte("eyJ.first.sig\n"), 0o644)
	if got, err := readAssertion(f, "", "workload token"); err != nil || got != "eyJ.first.sig" {
		t.Fatalf("readAssertion = %q, %v", got, err)
	}
	os.WriteFile(f, []byte("eyJ.rotated.sig"), 0o644)
	if got, _ := readAssertion(f, "", "workload token"); got != "eyJ.rotated.sig" {
		t.Errorf("after rotation: %q, want the new token", got)
	}
	t.Setenv("MCPKEY_TEST_WORKLOAD_TOKEN", " eyJ.env.sig ")
	if got, err := readAssertion("", "MCPKEY_TEST_WORKLOAD_TOKEN", "workload token"); err != nil || got != "eyJ.env.sig" {
		t.Errorf("from the environment: %q, %v", got, err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("s3cret", maxAssertion)), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o644)
	for _, tc := range []struct{ file, env, want string }{
		{filepath.Join(dir, "missing"), "", "read the workload token: open"},
		{empty, "", "the workload token file " + empty + " is empty"},
		{big, "", "is larger than 65536 bytes: not a token"},
		{"", "MCPKEY_TEST_UNSET_VARIABLE", "the workload token variable MCPKEY_TEST_UNSET_VARIABLE is not set in the agent's environment"},
	} {
		_, err := readAssertion(tc.file, tc.env, "workload token")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("readAssertion(%q, %q) = %v, want %q", tc.file, tc.env, err, tc.want)
		}
	}
}
