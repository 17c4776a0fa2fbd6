#!/bin/sh
# Upstream-style build phase: fetch the wheels of requirements.txt into the
# build output and install nothing. The upstream builder ran
# `pip wheel -r requirements.txt -w /pfs/out`; here the wheels go into their
# own folder so that the run phase can name it with --find-links.
set -eu

cd /pfs/source
mkdir -p /pfs/out/wheels
if [ -s requirements.txt ]; then
    python3 -m pip wheel --disable-pip-version-check --no-input --progress-bar off \
        --wheel-dir /pfs/out/wheels --requirement requirements.txt
fi
cp /app/run.sh /pfs/out/run.sh
