#!/bin/sh
# pachbuild rust builder: build phase.
#
# The platform runs `sh ./build.sh` in /app, the image's working directory,
# with the user's source at /pfs/source and an empty /pfs/out. Whatever this
# leaves in /pfs/out is the build output: the run phase finds it at
# /pfs/build. This builder's "language" is POSIX shell: the entry point is
# main.sh at the root of the source, and the build output is
#
#   /pfs/out/main.sh   the program, checked for syntax
#   /pfs/out/run.sh    the run-phase entry point (a copy of /app/run.sh)
#
# Nothing here writes into /pfs/source (it may be read-only).
set -eu

src=/pfs/source
out=/pfs/out
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'rust builder: %s\n' "$*"; }
die() { printf 'rust builder: error: %s\n' "$*" >&2; exit 1; }

[ -d "$src" ] || die "$src does not exist: the source must be mounted there"
[ -f "$src/main.sh" ] || die "$src has no main.sh: the rust builder runs main.sh from the root of the build path"
mkdir -p "$out"

# 1. Check (or compile) the entry point, so that a mistake fails the build
#    once instead of every datum. A compiled language builds here, into the
#    output, e.g.
#        cc -O2 -o "$out/main" "$src"/*.c || die "cc failed (see above)"
#    and fails with the compiler's messages.
say "checking main.sh"
sh -n "$src/main.sh" || die "main.sh has a syntax error (see the message above)"

# 2. Dependencies. A language with packages installs them here, into the
#    build output, ready to use, e.g.
#        python3 -m pip install --target "$out/site-packages" -r "$src/requirements.txt"
#    so that the run phase needs no network and installs nothing per datum.
#    Never install into the image (it is not kept between the two phases) or
#    into /pfs/source. Plain sh has no dependencies.

# 3. The build output: the program and the run-phase entry point.
cp "$src/main.sh" "$out/main.sh"
cp "$here/run.sh" "$out/run.sh"
say "build output ready"
