#!/bin/sh
# pachbuild rust builder: run phase, once per datum.
#
# The platform runs `sh /pfs/build/run.sh [args]`. Files under /pfs carry no
# exec bit, so the binary is copied to an executable file outside /pfs once;
# state outside /pfs survives from one datum to the next in a container, so
# later datums reuse that copy. The copy is named after the build's id, so a
# different build never reuses it. The program runs from the source root:
# `cd /pfs/source`, then `main "$@"`.
set -eu

# The build output is the folder holding this script (/pfs/build on the
# platform). Worked out without forking: this runs on every datum.
case $0 in
    */*) build=${0%/*} ;;
    *) build=. ;;
esac
case $build in
    /*) ;;
    *) build=$PWD/$build ;;
esac

id=
if [ -f "$build/build-id" ]; then
    read -r id <"$build/build-id" || :
fi
bin=${TMPDIR:-/tmp}/pachbuild-rust-main${id:+-$id}
if [ ! -x "$bin" ]; then
    # Copy, then rename: a half-written copy is never executed.
    tmp=$(mktemp "$bin.XXXXXX")
    cp "$build/main" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$bin"
fi

cd /pfs/source
exec "$bin" "$@"
