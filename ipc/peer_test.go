//go:build linux

package ipc_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/ipc/server"
)

const helperEnv = "MCPKEY_IPC_TEST_DIAL"

// TestMain lets the test binary act as a tiny client, run as another user by
// TestOtherUserRefused.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(helperClient(path))
	}
	if spec := os.Getenv(swapEnv); spec != "" {
		os.Exit(helperSwapper(spec))
	}
	os.Exit(m.Run())
}

// helperClient sends token.get and prints REPLY or NOREPLY.
func helperClient(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("DIALFAIL", err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, `{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`+"\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("NOREPLY", err)
		return 0
	}
	fmt.Println("REPLY", line)
	return 0
}

func TestOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	// A directory and socket nobody can reach, so that only the peer-uid
	// check stands between nobody and the agent.
	dir := shortDir(t)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "open.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	s := serveOn(t, &testBackend{}, server.ServerOptions{}, ln, path)

	// The test binary may sit in a directory nobody cannot enter: copy it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	copyFile(t, exe, bin)

	run := func(asNobody bool) string {
		var cmd *exec.Cmd
		if asNobody {
			cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^$")
		} else {
			cmd = exec.Command(bin, "-test.run=^$")
		}
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return string(out)
	}
	// Control: the same helper as our own user gets an answer.
	if out := run(false); !strings.HasPrefix(out, "REPLY") || !strings.Contains(out, "tok-a") {
		t.Fatalf("same-user helper: %s", out)
	}
	out := run(true)
	if !strings.HasPrefix(out, "NOREPLY") {
		t.Fatalf("nobody got an answer: %s", out)
	}
	waitFor(t, 5*time.Second, "refusal log", func() bool {
		return strings.Contains(s.logs.String(), "refused connection from another user") &&
			strings.Contains(s.logs.String(), "uid=65534")
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
