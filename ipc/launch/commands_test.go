package launch_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/ipc/cli"
	"github.com/mcpkey/mcpkey/ipc/launch"
)

// runCmd runs `mcpkey args...` with one command, whose run function is
// replaced (runF), and returns the exit code and stderr.
func runCmd(t *testing.T, c *cli.Command, f *cli.Factory, args ...string) (int, string) {
	t.Helper()
	code := cli.Run(t.Context(), f, []cli.Group{{Title: "t", Commands: []*cli.Command{c}}}, args)
	return code, f.IO.ErrOut.(*bytes.Buffer).String()
}

func testFactory() *cli.Factory {
	return &cli.Factory{IO: &cli.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, NoAutostart: true}
}

// TestExecCommandLine: exec takes an optional <server> and the command
// after --; without one it is a usage error and nothing runs.
func TestExecCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		server string
		argv   []string
	}{
		{[]string{"exec", "github", "--", "server", "--flag"}, "github", []string{"server", "--flag"}},
		{[]string{"exec", "--account", "a", "--", "env"}, "", []string{"env"}},
		{[]string{"exec", "--", "env", "--", "x"}, "", []string{"env", "--", "x"}},
	} {
		f := testFactory()
		var got *launch.ExecOptions
		code, errOut := runCmd(t, launch.NewCmdExec(f, func(_ context.Context, o *launch.ExecOptions) error { got = o; return nil }), f, tc.args...)
		if code != cli.ExitOK || got == nil || got.Server != tc.server || !slices.Equal(got.Argv, tc.argv) {
			t.Errorf("%q: exit %d (%s), options %+v", tc.args, code, errOut, got)
		}
	}
	f := testFactory()
	code, errOut := runCmd(t, launch.NewCmdExec(f, func(context.Context, *launch.ExecOptions) error {
		t.Error("exec ran without a command")
		return nil
	}), f, "exec", "github")
	if code != cli.ExitUsage || errOut != "mcpkey exec: missing -- <command>\nhint: run mcpkey help exec\n" {
		t.Errorf("exec without a command: exit %d, stderr %q", code, errOut)
	}
}

// TestProxyListensOnLoopbackOnly: --listen must be a loopback address.
func TestProxyListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:7391", "192.0.2.1:80", ":7391", "example.com:80", "127.0.0.1"} {
		f := testFactory()
		code, errOut := runCmd(t, launch.NewCmdProxy(f, func(context.Context, *launch.ProxyOptions) error {
			t.Errorf("proxy started on %s", addr)
			return nil
		}), f, "proxy", "--listen", addr)
		if code != cli.ExitUsage || !strings.Contains(errOut, "must be a loopback address") {
			t.Errorf("--listen %s: exit %d, stderr %q", addr, code, errOut)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:7391", "localhost:7391"} {
		f := testFactory()
		var got *launch.ProxyOptions
		code, errOut := runCmd(t, launch.NewCmdProxy(f, func(_ context.Context, o *launch.ProxyOptions) error { got = o; return nil }), f,
			"proxy", "--listen", addr, "--allow-origin", "https://a.example", "--allow-origin", "https://b.example")
		if code != cli.ExitOK || got == nil || got.Listen != addr || !slices.Equal(got.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
			t.Errorf("--listen %s: exit %d (%s), options %+v", addr, code, errOut, got)
		}
	}
}
