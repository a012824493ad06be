package packaging

import (
	"fmt"
	"strings"
)

// ManPage returns mcpkey(1) in roff (man(7) macros) for cmds: every command
// with its synopsis, text and flags, then the files the packages and
// `mcpkey install` put in place. It carries no date, so a build is
// reproducible.
func ManPage(cmds []Command, version string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH MCPKEY 1 \"\" %s \"User Commands\"\n", roffQuote("mcpkey "+version))
	b.WriteString(`.SH NAME
mcpkey \- ssh\-agent for MCP OAuth
.SH SYNOPSIS
.B mcpkey
.I command
.RI [ flags ]
.RI [ args ]
.SH DESCRIPTION
One agent per user holds the user's MCP servers' OAuth sessions in the OS keyring,
signs the user in through the browser (OAuth 2.1 with PKCE), is the only process
that refreshes tokens, and hands audience\-bound access tokens to local programs
over a Unix socket.
.SH COMMANDS
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, ".SS %s\n", roffQuote(strings.TrimSpace("mcpkey "+c.Name+" "+c.Args)))
		if c.Aliases != "" {
			fmt.Fprintf(&b, "Alias: %s.\n.br\n", roffText(strings.Join(strings.Fields(c.Aliases), ", ")))
		}
		b.WriteString(roffText(c.Short) + "\n")
		if c.Long != "" {
			b.WriteString(roffBlock(c.Long))
		}
		for _, f := range c.Flags {
			b.WriteString(".TP\n\\fB\\-\\-" + roffText(f.Name) + "\\fR")
			if f.Value != "" {
				b.WriteString(" \\fI" + roffText(f.Value) + "\\fR")
			}
			b.WriteString("\n" + roffText(f.Usage))
			if f.Default != "" {
				b.WriteString(" (default: " + roffText(f.Default) + ")")
			}
			if f.Repeatable {
				b.WriteString("; may be repeated")
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(`.SH FILES
.TP
.I ~/.config/systemd/user/mcpkey.service, mcpkey.socket
systemd user units written by
.BR "mcpkey install" ;
the packages ship them in
.IR /usr/lib/systemd/user/ .
The socket is
.IR $XDG_RUNTIME_DIR/mcpkey/agent.sock .
.TP
.I ~/.config/autostart/mcpkey.desktop
the tray's login item (XDG autostart), written by
.BR "mcpkey install \\-\\-tray" ;
the packages ship it in
.IR /etc/xdg/autostart/ .
.TP
.I ~/Library/LaunchAgents/com.mcpkey.agent.plist, com.mcpkey.tray.plist
the macOS LaunchAgents.
.SH SEE ALSO
.BR systemctl (1),
.BR launchctl (1),
.BR systemd.socket (5)
`)
	return b.String()
}

// roffText escapes text for a roff line: backslashes and dashes, and a
// leading dot or quote, which would start a request.
func roffText(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote makes s one double-quoted macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffText(s), `"`, `\(dq`) + `"`
}

// roffBlock renders help text: paragraphs are filled, and runs of indented
// lines (examples, lists) are kept as they are, indented.
func roffBlock(text string) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	inPre, para := false, false
	for _, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			if inPre {
				b.WriteString(".fi\n.RE\n")
				inPre = false
			}
			para = false
		case strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t"):
			if !inPre {
				b.WriteString(".PP\n.RS 4\n.nf\n")
				inPre, para = true, false
			}
			b.WriteString(roffText(strings.TrimLeft(l, " \t")) + "\n")
		default:
			if inPre {
				b.WriteString(".fi\n.RE\n")
				inPre = false
			}
			if !para {
				b.WriteString(".PP\n")
				para = true
			}
			b.WriteString(roffText(l) + "\n")
		}
	}
	if inPre {
		b.WriteString(".fi\n.RE\n")
	}
	return b.String()
}
