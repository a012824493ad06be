//go:build unix

package packaging

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv switches the test binary into one of the helper roles below.
const helperEnv = "MCPKEY_TEST_ACTIVATION"

// activationReport is what the activated child prints on stdout.
type activationReport struct {
	OK       bool
	Err      string
	Network  string
	Pid      int
	LeftEnv  []string // LISTEN_* variables still set after the call
	Accepted bool
}

// TestActivationHelper is not a test: it is the child process of the
// activation tests.
//
//   - role "shim" plays systemd's part after fork: fd 3 is the inherited
//     listener, so it sets LISTEN_FDS and LISTEN_PID to its own pid and
//     execs the "agent" role. exec keeps the pid, exactly as systemd's
//     fork-set-exec does, so the agent sees its own pid honestly.
//   - role "agent" calls ActivationListener, reports on stdout, and serves
//     one connection with its pid.
func TestActivationHelper(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "shim":
		// syscall.Exec does not deduplicate: the first of two entries wins.
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, helperEnv+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()), "LISTEN_FDS=1", "LISTEN_FDNAMES=agent.sock", helperEnv+"=agent")
		err := syscall.Exec(os.Args[0], os.Args, env)
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(1)
	case "agent":
		activatedAgent()
	default:
		t.Skip("helper process only")
	}
}

func activatedAgent() {
	ln, ok, err := ActivationListener()
	r := activationReport{OK: ok, Pid: os.Getpid()}
	if err != nil {
		r.Err = err.Error()
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, set := os.LookupEnv(v); set {
			r.LeftEnv = append(r.LeftEnv, v)
		}
	}
	var conn net.Conn
	if ln != nil {
		r.Network = ln.Addr().Network()
		ln.(*net.UnixListener).SetDeadline(time.Now().Add(30 * time.Second))
		conn, err = ln.Accept()
		r.Accepted = err == nil
		if err != nil {
			r.Err = err.Error()
		}
	}
	json.NewEncoder(os.Stdout).Encode(r)
	if conn != nil {
		fmt.Fprintf(conn, "hello from %d\n", os.Getpid())
		conn.Close()
	}
	os.Exit(0)
}

// dialAndRead connects to the socket and returns the line the activated
// agent sends.
func dialAndRead(t *testing.T, sock string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from the activated agent: %v", err)
	}
	return strings.TrimSpace(line)
}

func checkReport(t *testing.T, out []byte, pid int) {
	t.Helper()
	var r activationReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child report %q: %v", out, err)
	}
	if !r.OK || r.Err != "" || r.Network != "unix" || !r.Accepted {
		t.Errorf("ActivationListener in the child: %+v", r)
	}
	if len(r.LeftEnv) != 0 {
		t.Errorf("still set after ActivationListener: %v", r.LeftEnv)
	}
	if r.Pid != pid {
		t.Errorf("child pid %d, want %d", r.Pid, pid)
	}
}

// TestActivationListenerShim passes a real listening socket as fd 3 to a
// child that execs itself with LISTEN_PID set to its own pid.
func TestActivationListenerShim(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // the child holds the socket now (via f)
	cmd := exec.Command(os.Args[0], "-test.run=^TestActivationHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"=shim")
	cmd.ExtraFiles = []*os.File{f} // fd 3
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := dialAndRead(t, sock)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if want := fmt.Sprintf("hello from %d", cmd.Process.Pid); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkReport(t, []byte(stdout.String()), cmd.Process.Pid)
}

// TestActivationListenerSystemd lets systemd's own tool do the activation.
func TestActivationListenerSystemd(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (package systemd)")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(ssa, "-l", sock, "-E", helperEnv+"=agent", os.Args[0], "-test.run=^TestActivationHelper$")
	var stdout strings.Builder
	stderr, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = &stdout, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); w.Close() })
	// It says "Listening on <path> as 3." once the socket is bound.
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "Listening on") {
	}
	go io.Copy(io.Discard, stderr) // cmd.Wait waits for stderr to be read
	got := dialAndRead(t, sock)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("systemd-socket-activate: %v", err)
	}
	if want := fmt.Sprintf("hello from %d", cmd.Process.Pid); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkReport(t, []byte(stdout.String()), cmd.Process.Pid)
}

func TestActivationListenerNotForUs(t *testing.T) {
	for _, tc := range []struct {
		name, pid, fds, wantErr string
	}{
		{"nothing passed", "", "", ""},
		{"another process's", "1", "1", ""},
		{"fds without pid", "", "1", ""},
		{"bad count", strconv.Itoa(os.Getpid()), "x", `LISTEN_FDS="x" is not a positive number`},
		{"zero", strconv.Itoa(os.Getpid()), "0", `LISTEN_FDS="0" is not a positive number`},
		{"two sockets", strconv.Itoa(os.Getpid()), "2", "passed 2 sockets; mcpkey expects one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{"LISTEN_PID": tc.pid, "LISTEN_FDS": tc.fds, "LISTEN_FDNAMES": "x"} {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			ln, ok, err := ActivationListener()
			if ln != nil || ok {
				t.Errorf("got a listener (%v, %v)", ln, ok)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
				if _, set := os.LookupEnv(k); set {
					t.Errorf("%s still set", k)
				}
			}
		})
	}
}
