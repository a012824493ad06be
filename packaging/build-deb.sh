#!/usr/bin/env bash
# Builds mcpkey's .deb and .rpm into dist/ (or $DIST_DIR):
#   bash packaging/build-deb.sh            # GOARCH of this machine
#   GOARCH=arm64 bash packaging/build-deb.sh
#   VERSION=v1.2.3 DIST_DIR=/tmp/out bash packaging/build-deb.sh
# The binary is built with -trimpath and the version from git describe; the
# units come from packaging's embedded files rendered for /usr/bin/mcpkey;
# completions and the man page come from the built binary (mcpkey completion,
# mcpkey man), or from packaging/internal/pkgfiles until it has those commands.
set -euo pipefail

NFPM_VERSION=v2.48.0
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

goarch=${GOARCH:-$(go env GOARCH)}
unset GOARCH GOOS # the target is passed to go build alone; go run builds for this host
dist=${DIST_DIR:-$root/dist}
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
# Package versions must start with a digit and, for rpm, hold no '-':
# v1.2.3 -> 1.2.3; v1.2.3-4-gabc-dirty -> 1.2.3+4.gabc.dirty;
# no tag: 0.0.0+git.<hash>[.dirty].
if [[ $version =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)(-(.*))?$ ]]; then
	pkg_version=${BASH_REMATCH[1]}
	[[ -n ${BASH_REMATCH[3]} ]] && pkg_version+="+${BASH_REMATCH[3]//-/.}"
else
	pkg_version="0.0.0+git.${version//-/.}"
fi
# Reproducible: file times in the packages are the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

echo "building mcpkey $version (package $pkg_version, $goarch)"
CGO_ENABLED=${CGO_ENABLED:-0} GOOS=linux GOARCH=$goarch \
	go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$build/mcpkey" .

go run ./packaging/internal/pkgfiles -out "$build"

# Completions and the man page: from the binary when it can run here and has
# the commands, else from the placeholder table.
if [[ $goarch == "$(go env GOHOSTARCH)" ]] &&
	"$build/mcpkey" completion bash >"$build/completion.bash" 2>/dev/null &&
	"$build/mcpkey" completion zsh >"$build/completion.zsh" &&
	"$build/mcpkey" completion fish >"$build/completion.fish" &&
	"$build/mcpkey" man >"$build/mcpkey.1"; then
	echo "completions and man page: from mcpkey"
else
	echo "completions and man page: from packaging/internal/pkgfiles (the binary has no completion/man commands yet)"
	go run ./packaging/internal/pkgfiles -out "$build" -docs -version "$version"
fi
gzip -9 -n -f "$build/mcpkey.1"

mkdir -p "$dist"
for packager in deb rpm; do
	PKG_VERSION=$pkg_version PKG_ARCH=$goarch BUILD_DIR=$build \
		go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" package \
		--config packaging/nfpm.yaml --packager "$packager" --target "$dist/"
done
ls -l "$dist"
