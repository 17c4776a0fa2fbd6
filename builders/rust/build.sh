#!/bin/sh
# pachbuild rust builder: build phase.
#
# The platform runs `sh ./build.sh` in /app with the user's source at
# /pfs/source and an empty /pfs/out. This builds the Cargo package at the
# source root in release mode, in a scratch copy of the source, and leaves
# in /pfs/out:
#
#   /pfs/out/main        the program: one binary of the package (see below)
#   /pfs/out/build-id    its SHA-256, which names run.sh's executable copy
#   /pfs/out/Cargo.lock  the lock file the build used (commit it to pin versions)
#   /pfs/out/run.sh      the run-phase entry point (a copy of /app/run.sh)
#
# Dependencies:
#   - vendor/ at the source root: built with --offline from vendor/. The
#     project's own .cargo/config.toml is honoured when it configures
#     sources (as `cargo vendor` tells you to); otherwise crates-io is
#     replaced with vendor/ on the command line (--config).
#   - otherwise crates come from the package registry (crates.io) at build
#     time, through the CA bundle and proxy the container is given.
#   - Cargo.lock present: --locked (exactly the locked versions; a lock
#     file that does not match Cargo.toml fails the build). Absent: cargo
#     resolves the newest matching versions, and the result is saved as
#     /pfs/out/Cargo.lock.
#
# Which binary: the one bin target the build produced; with several, the
# package's `default-run`, else the bin built from src/main.rs (the one
# named after the package); else the build fails, listing them.
#
# Nothing here writes into /pfs/source (it may be read-only).
set -eu

src=/pfs/source
out=/pfs/out
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'rust builder: %s\n' "$*"; }
die() { printf 'rust builder: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH in this image"
command -v rustc >/dev/null 2>&1 || die "rustc is not on PATH in this image"
[ -d "$src" ] || die "$src does not exist: the source must be mounted there"
if [ ! -f "$src/Cargo.toml" ]; then
    fix="run \`cargo init --bin\` in it"
    if [ -f "$src/main.rs" ] && [ ! -f "$src/src/main.rs" ]; then
        fix="move main.rs to src/main.rs, then $fix"
    fi
    die "$src has no Cargo.toml: the rust builder builds the Cargo package at the root of the build path (transform.build.path); $fix"
fi
mkdir -p "$out"

# A scratch copy of the source: cargo writes Cargo.lock beside Cargo.toml,
# and build scripts may write anywhere in it. A target/ folder at the root
# (a local build uploaded along) is left out: the build has its own.
work=$(mktemp -d "${TMPDIR:-/tmp}/pachbuild-rust.XXXXXX")
trap 'rm -rf "$work"' EXIT
dir=$work/src
mkdir "$dir"
for entry in "$src"/* "$src"/.[!.]* "$src"/..?*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    if [ "${entry##*/}" = target ] && [ -d "$entry" ]; then
        say "not copying target/ from the source (a local build; add \`target/*\` to .pachignore to not upload it)"
        continue
    fi
    cp -R "$entry" "$dir/"
done

# CARGO_HOME (registry cache, config): the image's when it is writable
# (/usr/local/cargo in both bases), else a scratch one that keeps its config.
home_dir=${CARGO_HOME:-${HOME:-/nonexistent}/.cargo}
if ! mkdir -p "$home_dir" 2>/dev/null || [ ! -w "$home_dir" ]; then
    CARGO_HOME=$work/cargo-home
    mkdir -p "$CARGO_HOME"
    for f in config.toml config; do
        if [ -f "$home_dir/$f" ]; then cp "$home_dir/$f" "$CARGO_HOME/$f"; fi
    done
    export CARGO_HOME
    say "$home_dir is not writable: using CARGO_HOME=$CARGO_HOME"
fi
# Plain messages in the log (rustc's `error[E...]` lines unbroken by colours).
CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_TERM_COLOR
# The image's toolchain builds, in both bases: a rust-toolchain file in the
# source would make rustup (upstream base) download another toolchain, and
# is ignored where there is no rustup (Debian base). Pin rustup's default.
for f in "$dir/rust-toolchain.toml" "$dir/rust-toolchain"; do
    if [ -f "$f" ]; then
        say "${f##*/} is not honoured: the image's toolchain builds"
        if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && command -v rustup >/dev/null 2>&1; then
            toolchain=$(rustup default 2>/dev/null) || toolchain=
            toolchain=${toolchain%% *}
            if [ -n "$toolchain" ]; then
                RUSTUP_TOOLCHAIN=$toolchain
                export RUSTUP_TOOLCHAIN
            fi
        fi
        break
    fi
done

say "$(cargo --version), $(rustc --version)"
set -- --release --target-dir "$work/target" --message-format=json-render-diagnostics
if [ -f "$dir/Cargo.lock" ]; then
    set -- "$@" --locked
    lock="Cargo.lock present: --locked"
else
    lock="no Cargo.lock: cargo resolves versions now (saved as /pfs/out/Cargo.lock)"
fi
if [ -d "$dir/vendor" ]; then
    set -- "$@" --offline
    configured=false
    for f in "$dir/.cargo/config.toml" "$dir/.cargo/config"; do
        if [ -f "$f" ] && grep -Eq '^[[:space:]]*(\[[[:space:]]*source[].]|source[.])' "$f"; then
            configured=true
        fi
    done
    if $configured; then
        say "vendor/ and sources configured in .cargo/config.toml: building offline with them; $lock"
    else
        set -- "$@" \
            --config 'source.crates-io.replace-with="pachbuild-vendor"' \
            --config "source.pachbuild-vendor.directory=\"$dir/vendor\""
        say "vendor/: building offline, crates-io replaced with vendor/; $lock"
    fi
else
    say "dependencies (if any) from the package registry, crates.io; $lock"
fi

# Artifact messages (JSON, one a line) go to a file; cargo's progress and
# rustc's diagnostics go to the log as usual.
messages=$work/messages.json
if ! (cd "$dir" && cargo build "$@" >"$messages"); then
    if [ -d "$dir/vendor" ]; then
        die "cargo build failed (see cargo's messages above); with vendor/ the build is offline: every crate must be in vendor/ (\`cargo vendor\`), and Cargo.lock must agree with it"
    fi
    die "cargo build failed (see cargo's messages above)"
fi

# The executables of bin targets, from cargo's own account of the build
# (so build.target-dir or build.target in a project config cannot hide them).
bins=$(grep '"reason":"compiler-artifact"' "$messages" |
    grep '"kind":\["bin"\]' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | LC_ALL=C sort) || :
count=$(printf '%s' "$bins" | grep -c . || :)
names=$(printf '%s\n' "$bins" | sed 's#.*/##' | tr '\n' ' ')
names=${names% }
if [ "$count" -eq 0 ]; then
    die "the package builds no binary: the rust builder runs a bin target (src/main.rs, src/bin/*.rs or [[bin]] in Cargo.toml)"
elif [ "$count" -eq 1 ]; then
    bin=$bins
    why="the package's only binary"
else
    # `default-run = "NAME"` in the [package] table of Cargo.toml.
    default_run=$(sed -n '/^[[:space:]]*\[package\][[:space:]]*$/,/^[[:space:]]*\[/ s/^[[:space:]]*default-run[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$dir/Cargo.toml" | head -n 1)
    bin=
    if [ -n "$default_run" ]; then
        bin=$(printf '%s\n' "$bins" | grep -x ".*/$default_run" | head -n 1) || :
        why="default-run = \"$default_run\""
    fi
    if [ -z "$bin" ]; then
        main_bin=$(grep '"reason":"compiler-artifact"' "$messages" |
            grep '"kind":\["bin"\]' |
            grep -F "\"src_path\":\"$dir/src/main.rs\"" |
            sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | head -n 1) || :
        bin=$main_bin
        why="the binary built from src/main.rs"
    fi
    [ -n "$bin" ] || die "the build produced several binaries ($names) and none is the program: set \`default-run = \"NAME\"\` in [package] of Cargo.toml, or put the program in src/main.rs"
fi
[ -f "$bin" ] || die "cargo reported the binary $bin, but it does not exist"
say "program: ${bin##*/} ($why; built: $names)"

cp "$bin" "$out/main"
chmod 0755 "$out/main"
# run.sh copies the binary out of /pfs/build once per container (files under
# /pfs carry no exec bit); this id keeps a copy from another build from being
# taken for this one.
sum=$(sha256sum "$out/main")
printf '%s\n' "${sum%% *}" >"$out/build-id"
if [ -f "$dir/Cargo.lock" ]; then
    cp "$dir/Cargo.lock" "$out/Cargo.lock"
fi

cp "$here/run.sh" "$out/run.sh"
chmod 0755 "$out/run.sh"
say "build output ready: main ($(wc -c <"$out/main") bytes, linked against the image's glibc)"
