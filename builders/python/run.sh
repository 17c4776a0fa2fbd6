#!/bin/sh
# pachbuild python builder: run phase, once per datum.
#
# The platform runs `sh /pfs/build/run.sh [args]`. The dependencies were
# installed and byte-compiled at build time into site-packages/ beside this
# file, so nothing is installed and nothing is downloaded here. The user's
# program runs from the source root: `cd /pfs/source`, then
# `python3 main.py "$@"`.
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

if [ -d "$build/site-packages" ]; then
    PYTHONPATH=$build/site-packages${PYTHONPATH:+:$PYTHONPATH}
    export PYTHONPATH
fi
# /pfs/build may be read-only and /pfs/source is the user's input: write no
# __pycache__ folders into either.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

cd /pfs/source
exec python3 main.py "$@"
