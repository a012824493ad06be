package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/internal/safefile"
	"github.com/mcpkey/mcpkey/internal/safefile/safefiletest"
)

func assertUntouched(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "planted" {
		t.Errorf("the other user's file now holds %q (%v); want it untouched", b, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteFileRefusesAnotherUsersFile(t *testing.T) {
	p := filepath.Join(safefiletest.SharedDir(t), "proxy.secret")
	safefiletest.Plant(t, p)
	err := safefile.WriteFile(p, []byte("s3cret\n"), 0)
	if !errors.Is(err, safefile.ErrNotOurs) {
		t.Fatalf("WriteFile over uid 65534's 0666 file: %v, want ErrNotOurs", err)
	}
	if !strings.Contains(err.Error(), "uid 65534") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q should name the owner and never the content", err)
	}
	assertUntouched(t, p)
}

func TestOpenAppendRefusesAnotherUsersFile(t *testing.T) {
	p := filepath.Join(safefiletest.SharedDir(t), "audit.jsonl")
	safefiletest.Plant(t, p)
	f, err := safefile.OpenAppend(p)
	if err == nil {
		f.Close()
	}
	if !errors.Is(err, safefile.ErrNotOurs) {
		t.Fatalf("OpenAppend of uid 65534's 0666 file: %v, want ErrNotOurs", err)
	}
	assertUntouched(t, p)
}

func TestWriteFileCreates0600AndReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.ws.json")
	for _, content := range []string{"one", "two"} {
		if err := safefile.WriteFile(p, []byte(content), 0); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(b) != content || fi.Mode().Perm() != 0o600 {
			t.Errorf("after writing %q: content %q, mode %v; want 0600", content, b, fi.Mode().Perm())
		}
	}
	// A file of ours with a loose mode is replaced by a 0600 one.
	os.Chmod(p, 0o666)
	if err := safefile.WriteFile(p, []byte("three"), 0); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after rewriting a 0666 file of ours, want 0600", fi.Mode().Perm())
	}
}

func TestOpenTightensOursAndRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.log")
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := safefile.OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new\n")
	f.Close()
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o600 || string(b) != "old\nnew\n" {
		t.Errorf("mode %v content %q; want 0600 and the line appended", fi.Mode().Perm(), b)
	}

	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("x"), 0o600)
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if f, err := safefile.OpenAppend(link); err == nil {
		f.Close()
		t.Fatal("OpenAppend followed a symbolic link")
	} else if !errors.Is(err, safefile.ErrNotOurs) {
		t.Errorf("OpenAppend of a symlink: %v, want ErrNotOurs", err)
	}

	fresh := filepath.Join(dir, "new.lock")
	f, err = safefile.Open(fresh, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := safefile.Open(fresh, os.O_RDWR|os.O_TRUNC); err == nil {
		t.Error("Open accepted O_TRUNC")
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := safefile.CheckDir(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
	if err := safefile.CheckDir(dir); err != nil {
		t.Errorf("our 0700 dir: %v", err)
	}
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if err := safefile.CheckDir(open); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("a 0777 dir of ours: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(dir, link)
	if err := safefile.CheckDir(link); !errors.Is(err, safefile.ErrNotOurs) {
		t.Errorf("a symlink: %v, want ErrNotOurs", err)
	}
	theirs := filepath.Join(safefiletest.SharedDir(t), "keyring")
	safefiletest.AsOther(t, `mkdir -m 700 "$1"`, theirs)
	if err := safefile.CheckDir(theirs); !errors.Is(err, safefile.ErrNotOurs) || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("uid 65534's dir: %v, want ErrNotOurs naming the owner", err)
	}
}
