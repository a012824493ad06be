#!/usr/bin/env bash
# What CI runs for packaging (issue 8), from a clone, as root on Debian:
#   bash packaging/ci.sh
# 1. go vet and test the packaging package;
# 2. cross-build every package for windows/amd64, darwin/arm64, linux/arm64
#    (no cgo);
# 3. build the .deb and .rpm, install the .deb with dpkg -i, run
#    mcpkey version, check the installed user units with systemd-analyze
#    verify, then remove the package again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n== %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "packaging/ci.sh: run as root (it installs the .deb with dpkg -i)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v systemd-socket-activate >/dev/null || need+=(systemd)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v man >/dev/null || need+=(man-db)
if ((${#need[@]})); then
	step "apt-get install ${need[*]}"
	apt-get update -q
	apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"
fi

step "go vet and go test ./packaging/..."
go vet ./packaging/...
go test -race ./packaging/...

step "cross-builds"
failed=()
for target in windows/amd64 darwin/arm64 linux/arm64 linux/amd64; do
	if CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} go build ./... && \
		CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} go vet ./packaging/...; then
		echo "ok   $target"
	else
		echo "FAIL $target"
		failed+=("$target")
	fi
done
if ((${#failed[@]})); then
	echo "cross-builds failed: ${failed[*]}" >&2
	exit 1
fi

step "build the .deb and .rpm"
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
version=$(git describe --tags --always --dirty)
VERSION=$version DIST_DIR=$dist bash packaging/build-deb.sh
deb=$(ls "$dist"/*.deb)
rpm=$(ls "$dist"/*.rpm)
[[ -s $rpm ]]

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb"
trap 'dpkg -r mcpkey >/dev/null 2>&1 || true; rm -rf "$dist"' EXIT
for f in /usr/bin/mcpkey /usr/lib/systemd/user/mcpkey.service /usr/lib/systemd/user/mcpkey.socket \
	/etc/xdg/autostart/mcpkey.desktop /usr/share/man/man1/mcpkey.1.gz \
	/usr/share/bash-completion/completions/mcpkey /usr/share/zsh/vendor-completions/_mcpkey \
	/usr/share/fish/vendor_completions.d/mcpkey.fish /usr/share/polkit-1/actions/dev.mcpkey.approve.policy; do
	[[ -f $f ]] || { echo "missing after dpkg -i: $f" >&2; exit 1; }
done
for f in /usr/lib/systemd/user/mcpkey.service /usr/lib/systemd/user/mcpkey.socket /etc/xdg/autostart/mcpkey.desktop; do
	mode=$(stat -c %a "$f")
	[[ $mode == 644 ]] || { echo "$f has mode $mode, want 644" >&2; exit 1; }
done

step "mcpkey version"
out=$(mcpkey version)
echo "$out"
want="mcpkey $version"
[[ $out == "$want" ]] || { echo "mcpkey version printed '$out', want '$want'" >&2; exit 1; }

step "systemd-analyze verify the installed user units"
# systemd-analyze --user needs a runtime directory even when no user manager runs.
rt=$(mktemp -d)
XDG_RUNTIME_DIR=$rt systemd-analyze --user verify \
	/usr/lib/systemd/user/mcpkey.socket /usr/lib/systemd/user/mcpkey.service
rm -rf "$rt"
if command -v desktop-file-validate >/dev/null; then
	desktop-file-validate /etc/xdg/autostart/mcpkey.desktop
fi
man -P cat mcpkey 2>/dev/null | grep -q 'mcpkey agent' || { echo "man mcpkey does not show the commands" >&2; exit 1; }

step "dpkg -r mcpkey"
dpkg -r mcpkey
[[ ! -e /usr/bin/mcpkey ]] || { echo "/usr/bin/mcpkey left after dpkg -r" >&2; exit 1; }
echo "packaging ci: ok"
