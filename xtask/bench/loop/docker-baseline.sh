#!/bin/sh
# pachbuild `cargo xtask bench loop`: the docker-CLI baseline.
#
# Does by hand, with the `docker` command line, what `cargo xtask run` does
# for a python build pipeline whose input is one repo with glob `/*`:
#
#   1. build phase: one `docker run --rm` of the builder image running
#      `sh ./build.sh` in its working directory (/app), with the source at
#      /pfs/source (read-only) and an empty /pfs/out (the build output);
#   2. run phase: one `docker run --rm --network none` per datum (each
#      top-level entry of the input folder), with /pfs/source, /pfs/build,
#      /pfs/<input>/<entry> and a fresh /pfs/out bind-mounted, the
#      environment `<input>=/pfs/<input>/<entry>` and `PPS_PIPELINE_NAME`,
#      running `sh /pfs/build/run.sh`;
#   3. the datums' outputs copied into OUT_DIR, in datum order (a path
#      written by two datums is overwritten, not appended as the platform
#      does; the bench's workloads write one distinct file per datum, and the
#      bench compares this output with ours byte for byte).
#
# Usage:
#   docker-baseline.sh IMAGE SOURCE_DIR INPUT_DIR OUT_DIR PIPELINE INPUT_NAME [CA_BUNDLE [RUN_ID]]
#
# CA_BUNDLE (may be empty: none) is mounted into the build container at
# /etc/pachbuild/ca-certificates.crt, with SSL_CERT_FILE, PIP_CERT and
# REQUESTS_CA_BUNDLE pointing at it, so that pip works behind a
# TLS-intercepting proxy; the proxy variables are forwarded when set. Every
# container is removed when it stops (--rm) and carries the label
# io.pachbuild.bench=RUN_ID. OUT_DIR must be new or empty.
#
# Prints, last, one line `timings: build=Xs datums=Ys merge=Zs total=Ts`
# (wall-clock seconds of each step).
set -eu
LC_ALL=C
export LC_ALL

me=docker-baseline
die() {
    printf '%s: error: %s\n' "$me" "$*" >&2
    exit 1
}
usage() {
    printf 'usage: %s IMAGE SOURCE_DIR INPUT_DIR OUT_DIR PIPELINE INPUT_NAME [CA_BUNDLE [RUN_ID]]\n' "$me" >&2
    exit 2
}
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

if [ $# -lt 6 ] || [ $# -gt 8 ]; then
    usage
fi
image=$1
source=$2
input=$3
out=$4
pipeline=$5
input_name=$6
ca=${7:-}
run_id=${8:-baseline-$$}

command -v docker >/dev/null 2>&1 || die "the docker command line is not on PATH (Debian: apt-get install docker.io)"
[ -d "$source" ] || die "no source folder $source"
[ -d "$input" ] || die "no input folder $input"
[ -z "$ca" ] || [ -f "$ca" ] || die "no CA bundle $ca"
case $input_name in
    '' | *[!A-Za-z0-9_]*) die "input name $input_name: letters, digits and _ only (it names an environment variable)" ;;
esac
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    die "$out exists and is not empty"
fi
mkdir -p "$out"
# Bind mounts need absolute paths.
source=$(cd "$source" && pwd)
input=$(cd "$input" && pwd)
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/pachbuild-baseline.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Containers run as root, as the harness's do; a user other than root runs
# them as itself, so that it can remove what they write.
user=
if [ "$(id -u)" != 0 ]; then
    user=--user=$(id -u):$(id -g)
fi
label=io.pachbuild.bench=$run_id

# --- build phase --------------------------------------------------------------
mkdir "$work/build"
if [ -n "$ca" ]; then
    bundle=/etc/pachbuild/ca-certificates.crt
    set -- -v "$ca:$bundle:ro" -e "SSL_CERT_FILE=$bundle" -e "PIP_CERT=$bundle" -e "REQUESTS_CA_BUNDLE=$bundle"
else
    set --
fi
t0=$(now)
# `-e NAME` forwards NAME only when it is set here.
docker run --rm --label "$label" ${user:+"$user"} \
    -v "$source:/pfs/source:ro" -v "$work/build:/pfs/out" "$@" \
    -e HTTP_PROXY -e HTTPS_PROXY -e NO_PROXY -e ALL_PROXY \
    -e http_proxy -e https_proxy -e no_proxy -e all_proxy \
    "$image" sh ./build.sh ||
    die "the build phase failed (its output is above)"
t1=$(now)

# --- run phase: one container per datum ----------------------------------------
n=0
for datum in "$input"/*; do
    # An empty input folder leaves the pattern as it is.
    [ -e "$datum" ] || continue
    n=$((n + 1))
    name=${datum##*/}
    mkdir "$work/out-$n"
    docker run --rm --label "$label" ${user:+"$user"} --network none \
        -v "$source:/pfs/source:ro" -v "$work/build:/pfs/build:ro" \
        -v "$datum:/pfs/$input_name/$name:ro" -v "$work/out-$n:/pfs/out" \
        -e "$input_name=/pfs/$input_name/$name" -e "PPS_PIPELINE_NAME=$pipeline" \
        "$image" sh /pfs/build/run.sh ||
        die "datum $n ($name) failed (its output is above)"
done
t2=$(now)

# --- the output: every datum's, in datum order ---------------------------------
i=1
while [ "$i" -le "$n" ]; do
    cp -R "$work/out-$i/." "$out/"
    i=$((i + 1))
done
t3=$(now)

printf '%s: %d datum(s), output in %s\n' "$me" "$n" "$out"
printf 'timings: build=%ss datums=%ss merge=%ss total=%ss\n' \
    "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" "$(seconds "$t2" "$t3")" "$(seconds "$t0" "$t3")"
