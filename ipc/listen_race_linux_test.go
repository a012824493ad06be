//go:build linux

package ipc_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/ipc"
)

// swapEnv makes the test binary the attacker of TestListenSymlinkSwap:
// "LINK|DECOY|THEIRS" flips the symbolic link LINK between DECOY and THEIRS
// as fast as it can, until killed.
const swapEnv = "MCPKEY_IPC_TEST_SWAP"

func helperSwapper(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		return 2
	}
	link, targets := parts[0], parts[1:]
	tmp := link + ".new"
	for i := 0; ; i++ {
		os.Remove(tmp)
		if err := os.Symlink(targets[i%2], tmp); err != nil {
			fmt.Println("symlink:", err)
			return 1
		}
		if err := os.Rename(tmp, link); err != nil {
			fmt.Println("rename:", err)
			return 1
		}
		if i == 0 {
			fmt.Println("SWAPPING") // the name is taken before the agent starts
		}
	}
}

// TestListenSymlinkSwap is another user attacking the fallback socket
// directory (<temp dir>/mcpkey-<uid>) in a shared sticky directory: they own
// the name and keep flipping it, as a symbolic link, between a directory of
// ours that passes the owner and mode checks and a directory of theirs,
// while the agent starts again and again. The socket must never land in
// their directory.
func TestListenSymlinkSwap(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the attacker as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	// A /tmp of our own: sticky and world-writable, reachable by nobody.
	base, err := os.MkdirTemp("/tmp", "mkswap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o1777); err != nil {
		t.Fatal(err)
	}
	decoy := filepath.Join(base, "ours") // ours, 0700: passes a check that follows the link
	if err := os.Mkdir(decoy, 0o700); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(theirs, 0o777)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, fmt.Sprintf("mcpkey-%d", os.Getuid()))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "attacker")
	copyFile(t, exe, bin)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), swapEnv+"="+link+"|"+decoy+"|"+theirs)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 9)
	if n, _ := out.Read(buf); string(buf[:n]) != "SWAPPING\n" {
		t.Fatalf("attacker did not start: %q", buf[:n])
	}

	path := filepath.Join(link, "agent.sock")
	const starts = 1000
	var landed, refused, listened int
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < starts && time.Now().Before(deadline); i++ {
		ln, err := ipc.Listen(path)
		if _, serr := os.Lstat(filepath.Join(theirs, "agent.sock")); serr == nil {
			landed++
			os.Remove(filepath.Join(theirs, "agent.sock"))
		}
		if err != nil {
			if !strings.Contains(err.Error(), "is a symbolic link") {
				t.Fatalf("start %d refused for another reason: %v", i, err)
			}
			refused++
			continue
		}
		listened++
		ln.Close()
	}
	t.Logf("%d starts refused, %d listened, %d sockets in the attacker's directory", refused, listened, landed)
	if landed > 0 {
		t.Fatalf("the socket landed in the attacker's directory in %d of %d starts", landed, refused+listened)
	}
	if refused == 0 {
		t.Fatal("no start was refused: the attack never ran")
	}
}
