// Command mcpkey is an ssh-agent for MCP OAuth: one per-user agent holds the
// user's MCP OAuth sessions in the OS keyring, runs the logins, is the only
// process that refreshes tokens, and hands access tokens to local programs
// over a Unix socket.
//
// This file is the command table and the dispatch only. The commands are
// built in package ipc/cli (client commands: sessions, access control,
// secrets, sockets, service), ipc/launch (bridge, exec, proxy, probe,
// config), ipc/mcpremote (import), ipc/server (agent, log) and tray (tray); see ipc/cli's package
// documentation for how to add a command or a flag.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mcpkey/mcpkey/ipc/cli"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/mcpkey/mcpkey/ipc/mcpremote"
	"github.com/mcpkey/mcpkey/ipc/server"
	"github.com/mcpkey/mcpkey/tray"
)

// version is stamped with -ldflags "-X main.version=…"; otherwise the module
// version from the build info is used.
var version = ""

// commands is the command table, in the groups and order `mcpkey help`
// lists them. A nil runF runs the command; tests pass their own.
func commands(f *cli.Factory) []cli.Group {
	var table []cli.Group
	all := func() []cli.Group { return table }
	table = []cli.Group{
		{Title: "sessions", Commands: []*cli.Command{
			cli.NewCmdLogin(f, nil),
			cli.NewCmdToken(f, nil),
			cli.NewCmdList(f, nil),
			cli.NewCmdStatus(f, nil),
			cli.NewCmdLogout(f, nil),
			launch.NewCmdProbe(f, nil),
		}},
		{Title: "MCP hosts", Commands: []*cli.Command{
			launch.NewCmdBridge(f, nil),
			launch.NewCmdExec(f, nil),
			launch.NewCmdProxy(f, nil),
			mcpremote.NewCmdImport(f),
			cli.NewCmdSecret(f, nil),
			launch.NewCmdConfig(f, nil),
		}},
		{Title: "access control", Commands: []*cli.Command{
			cli.NewCmdApprovals(f, nil),
			cli.NewCmdApprove(f, nil),
			cli.NewCmdDeny(f, nil),
			cli.NewCmdLock(f, nil),
			cli.NewCmdUnlock(f, nil),
			cli.NewCmdSocket(f, nil),
			server.NewCmdLog(f, nil),
		}},
		{Title: "running the agent", Commands: []*cli.Command{
			server.NewCmdAgent(f, tray.ForAgent, nil),
			tray.NewCmd(f, nil),
			cli.NewCmdInstall(f, nil),
			cli.NewCmdUninstall(f, nil),
		}},
		{Title: "other", Commands: []*cli.Command{
			cli.NewCmdCompletion(f, all),
			cli.NewCmdMan(f, all),
			cli.NewCmdVersion(f),
		}},
	}
	return table
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	f := cli.NewFactory(buildVersion())
	code := cli.Run(ctx, f, commands(f), os.Args[1:])
	stop()
	os.Exit(code)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
