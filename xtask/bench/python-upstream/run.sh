#!/bin/sh
# Upstream-style run phase, once per datum: install the wheels from the build
# output, then run main.py. The install happens on every datum, as upstream
# did (`pip install ./*.whl`); --no-index keeps it offline, as the run phase
# has no network. PIP_BREAK_SYSTEM_PACKAGES lets pip install into Debian's
# "externally managed" python; images without that guard ignore it.
set -e

cd /pfs/source
if [ -s requirements.txt ]; then
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-index \
        --find-links /pfs/build/wheels --requirement requirements.txt
fi
python3 main.py "$@"
