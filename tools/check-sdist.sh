#!/usr/bin/env bash
# Build the sdist, check that it holds every tracked source file, unpack it in
# an empty directory, install the package from the unpacked tree into a fresh
# venv and run the whole test suite from there (not from the checkout).
#
# usage: tools/check-sdist.sh
#   $PYTHON: the interpreter (default python3; needs `build`);
#   $CHECK_SDIST_PYTEST_ARGS: pytest arguments instead of `-q <unpacked>/tests`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/drasi-check-sdist.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== build the sdist"
"$PY" -m build --sdist --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
sdist="$(ls "$WORK"/dist/*.tar.gz)"
echo "built $(basename "$sdist") ($(stat -c %s "$sdist") bytes)"

echo "== sdist contents"
mkdir "$WORK/src"
tar -xzf "$sdist" -C "$WORK/src" --strip-components=1
"$PY" - "$ROOT" "$WORK/src" <<'EOF'
import subprocess, sys
from pathlib import Path

root, unpacked = Path(sys.argv[1]), Path(sys.argv[2])
have = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file()}
problems = []
# Only repository plumbing stays out of the sdist.
outside = (".ci/", ".git", ".github/")
try:
    tracked = subprocess.run(
        ["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
except (OSError, subprocess.CalledProcessError):
    tracked = []
    print("note: not a git checkout; only the required files are checked")
for name in tracked:
    if not name.startswith(outside) and (root / name).is_file() and name not in have:
        problems.append(f"missing {name}")
for name in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in",
             "cdefs/drasi_plugin.h", "ffi_build/build_ffi.py", "ffi_build/host.c",
             "cdefs/drasi_plugin_0_13.h", "ffi_build/build_ffi013.py", "ffi_build/host013.c",
             "ffi_build/jsonvalues.c",
             "plugins_fixture/build.py", "tests/conftest.py", "tests/c/channel_helper.c"):
    if name not in have:
        problems.append(f"missing {name}")
for name in sorted(have):
    if name.endswith((".so", ".o", ".pyc", ".dylib")) or name in (
        "drasi_host/_ffi.c", "drasi_host/_ffi013.c"
    ):
        problems.append(f"build product {name}")
for p in problems:
    print("FAIL:", p, file=sys.stderr)
print(f"{len(have)} files")
sys.exit(1 if problems else 0)
EOF

echo "== install from the unpacked sdist"
"$PY" -m venv "$WORK/venv"
(cd "$WORK" && "$WORK/venv/bin/python" -m pip install -q "./src[test,registry]") \
    > "$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }

echo "== test suite from the unpacked sdist"
if [ -z "${DRASI_SHARED_DIR:-}" ] && [ -d "$ROOT/../shared/testdata" ]; then
    DRASI_SHARED_DIR="$(cd "$ROOT/../shared" && pwd)"
    export DRASI_SHARED_DIR
fi
# The tests of the unpacked tree, run from an empty directory so that every
# import, also in subprocesses, is of the installed package.
mkdir "$WORK/run"
cd "$WORK/run"
"$WORK/venv/bin/python" -c "import drasi_host, sys; \
assert drasi_host.__file__.startswith(sys.prefix), drasi_host.__file__"
# shellcheck disable=SC2086
"$WORK/venv/bin/python" -m pytest -c "$WORK/src/pyproject.toml" --rootdir "$WORK/src" \
    -p no:cacheprovider ${CHECK_SDIST_PYTEST_ARGS:--q "$WORK/src/tests"}
echo "== sdist check passed: $(basename "$sdist")"
