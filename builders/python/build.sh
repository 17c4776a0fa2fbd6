#!/bin/sh
# pachbuild python builder: build phase.
#
# The platform runs `sh ./build.sh` in /app with the user's source at
# /pfs/source and an empty /pfs/out. Everything the run phase needs is left in
# /pfs/out:
#
#   /pfs/out/run.sh          the run-phase entry point (a copy of /app/run.sh)
#   /pfs/out/site-packages/  the dependencies of requirements.txt, installed
#                            with `pip install --target` and byte-compiled;
#                            absent when there is nothing to install
#
# Nothing here writes into /pfs/source (it may be read-only).
set -eu

src=/pfs/source
out=/pfs/out
deps=$out/site-packages
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'python builder: %s\n' "$*"; }
die() { printf 'python builder: error: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH in this image"
[ -d "$src" ] || die "$src does not exist: the source must be mounted there"
[ -f "$src/main.py" ] || die "$src has no main.py: the python builder runs main.py from the root of the build path"
mkdir -p "$out"

say "$(python3 --version 2>&1) at $(command -v python3)"

# A syntax error in main.py fails the build here rather than on every datum.
# Other .py files that do not compile only get a warning: they may never be
# imported (templates, Python 2 leftovers, test data).
python3 - "$src" <<'PY'
import os, sys, traceback

root = sys.argv[1]
failed_main = False
for folder, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, root)
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as e:
            lines = "".join(traceback.format_exception_only(type(e), e))
            if rel == "main.py":
                sys.stderr.write(lines)
                failed_main = True
            else:
                sys.stderr.write("python builder: warning: %s does not compile:\n%s" % (rel, lines))
if failed_main:
    sys.stderr.write("python builder: error: main.py does not compile\n")
    sys.exit(1)
PY

# requirements.txt counts only when it holds something besides blank lines
# and comments; otherwise pip is not run at all (it needs no network then).
req=$src/requirements.txt
if [ -f "$req" ] && grep -q -v -E '^[[:space:]]*(#.*)?$' "$req"; then
    say "installing requirements.txt into the build output"
    # --target installs into a folder of our own, so Debian's "externally
    # managed" (PEP 668) guard does not apply and nothing from the image's
    # own site-packages is taken as already satisfied: the output holds every
    # dependency. The run phase puts this folder first on PYTHONPATH.
    # Relative paths in requirements.txt are relative to the source root.
    (
        cd "$src"
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore \
        python3 -m pip install \
            --no-cache-dir \
            --no-compile \
            --no-warn-script-location \
            --progress-bar off \
            --target "$deps" \
            --requirement "$req"
    ) || die "pip could not install requirements.txt (see its messages above)"

    # Byte-code compiled now, beside the sources, so that no datum compiles a
    # dependency again (/pfs/build is read-only at run time). Hash-based .pyc
    # files do not depend on file times, which the platform's file system does
    # not keep; "unchecked" because the build output never changes after this.
    python3 -m compileall -q -q -j 0 --invalidation-mode unchecked-hash "$deps" \
        || say "note: some dependency files could not be byte-compiled; they are compiled when imported"

    # Plain PYTHONPATH entries are not "site" folders, so their .pth files
    # would be ignored. When a dependency ships one, a usercustomize module
    # (imported by site at start-up) processes them.
    has_pth=false
    for f in "$deps"/*.pth; do
        if [ -f "$f" ]; then has_pth=true; fi
    done
    if $has_pth && [ ! -e "$deps/usercustomize.py" ]; then
        say "processing the .pth files of the dependencies at start-up"
        cat >"$deps/usercustomize.py" <<'PY'
# Written by the pachbuild python builder: processes the .pth files of the
# dependencies installed beside this file.
import os as _os
import site as _site

_site.addsitedir(_os.path.dirname(_os.path.abspath(__file__)))
PY
        python3 -m compileall -q -q --invalidation-mode unchecked-hash "$deps/usercustomize.py" || true
    fi
    installed=
    for f in "$deps"/*.dist-info; do
        [ -d "$f" ] || continue
        f=${f##*/}
        installed="$installed ${f%.dist-info}"
    done
    say "installed:$installed"
else
    say "no requirements to install"
fi

cp "$here/run.sh" "$out/run.sh"
chmod 0755 "$out/run.sh"
say "build output ready"
