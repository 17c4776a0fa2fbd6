#!/bin/sh
# pachbuild rust builder: run phase, once per datum.
#
# The platform runs `sh /pfs/build/run.sh [args]`: the build output is at
# /pfs/build, the user's source at /pfs/source, the datum's input files at
# /pfs/<input> (its path is in the environment variable named after the
# input) and the output goes to /pfs/out. Files under /pfs carry no exec
# bits, so programs are run through their interpreter (or copied to /tmp and
# made executable first).
#
# Every pachbuild builder runs the user's program from the source root and
# passes on all its arguments unchanged. A language changes only the last
# line, e.g. `exec python3 main.py "$@"`.
set -eu

cd /pfs/source
exec sh /pfs/build/main.sh "$@"
