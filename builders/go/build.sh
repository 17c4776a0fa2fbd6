#!/bin/sh
# pachbuild go builder: build phase.
#
# The platform runs `sh ./build.sh` in /app with the user's source at
# /pfs/source and an empty /pfs/out. This compiles the package at the source
# root (package main) into one static binary and leaves in /pfs/out:
#
#   /pfs/out/main      the binary (CGO_ENABLED=0: no libc needed at run time)
#   /pfs/out/build-id  its SHA-256, which names run.sh's executable copy
#   /pfs/out/run.sh    the run-phase entry point (a copy of /app/run.sh)
#
# The network is never used: GOPROXY=off, GOTOOLCHAIN=local. Dependencies
# must be in the standard library or in vendor/ (with vendor/modules.txt).
# Nothing here writes into /pfs/source (it may be read-only).
set -eu

src=/pfs/source
out=/pfs/out
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'go builder: %s\n' "$*"; }
die() { printf 'go builder: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH in this image"
[ -d "$src" ] || die "$src does not exist: the source must be mounted there"
has_go=false
for f in "$src"/*.go; do
    if [ -f "$f" ]; then has_go=true; fi
done
$has_go || die "$src has no .go file at its root: the go builder builds the package at the root of the build path (package main)"
mkdir -p "$out"

# Never the network: no module proxy, no toolchain download, no checksum
# database, no workspace file from the source, no cgo (a static binary).
CGO_ENABLED=0
GOPROXY=off
GOTOOLCHAIN=local
GOSUMDB=off
GOWORK=off
export CGO_ENABLED GOPROXY GOTOOLCHAIN GOSUMDB GOWORK
# The build cache: the image's warmed one when it is writable, else a scratch one.
if [ -z "${GOCACHE:-}" ] || ! mkdir -p "$GOCACHE" 2>/dev/null || [ ! -w "$GOCACHE" ]; then
    GOCACHE=${TMPDIR:-/tmp}/pachbuild-go-cache
fi
export GOCACHE
# Go needs a GOPATH (module cache) even when it downloads nothing.
if [ -z "${GOPATH:-}" ] && [ -z "${HOME:-}" ]; then
    GOPATH=${TMPDIR:-/tmp}/pachbuild-gopath
    export GOPATH
fi

if [ -f "$src/go.mod" ]; then
    dir=$src
    if [ -f "$src/vendor/modules.txt" ]; then
        mode='vendor'
        say "building module with go.mod and vendor/ (-mod=vendor)"
    else
        mode='readonly'
        say "building module with go.mod (standard library and go.mod's requirements; nothing is downloaded)"
    fi
else
    # No go.mod: make one in a scratch copy of the source, never in /pfs/source.
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pachbuild-go-src.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
    cp -R "$src/." "$dir/"
    say "no go.mod: building a scratch copy of the source as module pachbuild.local/main"
    if ! msg=$(cd "$dir" && go mod init pachbuild.local/main 2>&1); then
        printf '%s\n' "$msg" >&2
        die "go mod init failed in the scratch copy of the source"
    fi
    mode='readonly'
fi
GOFLAGS="-mod=$mode -trimpath -buildvcs=false"
export GOFLAGS

say "$(go version) (GOROOT $(go env GOROOT))"
cd "$dir"
if ! go build -ldflags="-s -w" -o "$out/main" .; then
    die "go build failed (see the compiler's messages above)"
fi
chmod 0755 "$out/main"

# run.sh copies the binary out of /pfs/build once per container (files under
# /pfs carry no exec bit); this id keeps a copy from another build from being
# taken for this one.
sum=$(sha256sum "$out/main")
printf '%s\n' "${sum%% *}" >"$out/build-id"

cp "$here/run.sh" "$out/run.sh"
chmod 0755 "$out/run.sh"
say "build output ready: main ($(wc -c <"$out/main") bytes, static)"
