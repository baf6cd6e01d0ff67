"""Build the C fixture plugins from source with the machine's C compiler.

The fixture plugins are real Drasi plugin libraries written in C against
``cdefs/drasi_plugin.h``.  They are never committed as binaries: test
sessions, the demo and the benchmarks call :func:`build_fixtures`, which
compiles each entry of :data:`FIXTURES` into ``libdrasi_<lib>.so`` (``.dylib``
on macOS) in the requested directory.

A library is rebuilt only when it is missing, when one of its sources, the
fixture headers or the ABI header is newer than it, or when its compiler
command line changed (recorded next to it in ``<library>.cmd``).  Outputs are
written to a temporary name and renamed into place, so concurrent builds into
one directory never expose a half-written library.

Usable as a module (``build_fixtures(out_dir)``) and as a script::

    python plugins_fixture/build.py OUT_DIR [--only NAME ...] [--cc CC] [--selftest]

``--selftest`` also builds and runs ``selftest.c`` (a C host that checks every
fixture; under valgrind with leak checking when valgrind is installed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CDEFS = REPO / "cdefs"
ABI_HEADER = CDEFS / "drasi_plugin.h"

BASE_FLAGS = ("-std=c11", "-O2", "-g", "-fPIC", "-pthread", "-Wall", "-Wextra", "-Werror")
CXX_FLAGS = ("-std=c++17", "-O2", "-g", "-fPIC", "-pthread", "-Wall", "-Wextra", "-Werror")


class FixtureBuildError(RuntimeError):
    """A fixture failed to compile; the message carries the compiler's output."""


@dataclass(frozen=True)
class Fixture:
    """One build product: a plugin library (or the native benchmark consumer)."""

    sources: tuple[str, ...]
    defines: tuple[str, ...] = ()
    description: str = ""
    lib: str | None = None  # file stem after "libdrasi_"; defaults to the fixture name
    executable: bool = False
    link: tuple[str, ...] = ()
    cxx: bool = False  # C++ sources: built with $CXX (else c++), skipped without one


_CORE = ("common.c", "payload.c")
_SOURCE = (*_CORE, "source.c")


def _name(lib: str) -> str:
    return f'FX_LIB_NAME="{lib}"'


FIXTURES: dict[str, Fixture] = {
    "source": Fixture(
        (*_SOURCE, "lib_source.c"),
        (_name("source_fixture"),),
        "source factory 'fixture': configurable change/bootstrap event streams",
        lib="source_fixture",
    ),
    "reaction": Fixture(
        (*_CORE, "reaction.c", "lib_reaction.c"),
        (_name("reaction_fixture"),),
        "reaction factory 'fixture': counts, hashes and optionally stores results",
        lib="reaction_fixture",
    ),
    "bootstrap": Fixture(
        (*_CORE, "bootstrap.c", "lib_bootstrap.c"),
        (_name("bootstrap_fixture"),),
        "bootstrap factory 'fixture': sends `count` insert records",
        lib="bootstrap_fixture",
    ),
    "multi": Fixture(
        (*_SOURCE, "reaction.c", "bootstrap.c", "lib_multi.c"),
        (_name("multi"),),
        "sources multi-a/multi-b, reactions multi-r1..r3, bootstraps multi-b1/multi-b2",
    ),
    "opaque": Fixture(
        (*_SOURCE, "reaction.c", "lib_opaque.c"),
        (_name("opaque"), "FX_NO_PAYLOAD_FORMAT"),
        "no payload-format export; source 'opaque' with opaque payloads, 'opaque-reaction'",
    ),
    "noinit": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (_name("noinit"), "FX_NO_INIT"),
        "metadata but no drasi_plugin_init",
    ),
    "initnull": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (_name("initnull"), 'FX_SIMPLE_KIND="initnull"', "FX_INIT_NULL"),
        "drasi_plugin_init returns NULL",
    ),
    "badsdk": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (_name("badsdk"), 'FX_SIMPLE_KIND="badsdk"', 'FX_SDK_VERSION="0.3.1"'),
        "metadata sdk_version 0.3.1",
    ),
    "badtriple": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (
            _name("badtriple"),
            'FX_SIMPLE_KIND="badtriple"',
            'FX_TARGET_TRIPLE="riscv64gc-unknown-none-elf"',
        ),
        "metadata target triple riscv64gc-unknown-none-elf",
    ),
    "nometa": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (_name("nometa"), 'FX_SIMPLE_KIND="nometa"', "FX_NO_METADATA"),
        "no drasi_plugin_metadata export; good source factory 'nometa'",
    ),
    "badformat": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (
            _name("badformat"),
            'FX_SIMPLE_KIND="badformat"',
            'FX_PAYLOAD_FORMAT="application/x-unknown"',
        ),
        "payload format application/x-unknown",
    ),
    "threadlog": Fixture(
        (*_SOURCE, "lib_threadlog.c"),
        (_name("threadlog"),),
        "logs from its own thread after init; drasi_fixture_late_log(n) for late calls",
    ),
    "badutf8": Fixture(
        (*_SOURCE, "lib_simple.c"),
        (_name("badutf8"), "FX_KIND_BAD_UTF8"),
        "source factory whose kind is invalid UTF-8",
    ),
    "hostile": Fixture(
        (*_SOURCE, "lib_hostile.c"),
        (_name("hostile"),),
        "source factories 'hostile' / 'hostile-empty-schema' misbehaving per config `mode`",
    ),
    "hostile2": Fixture(
        (*_SOURCE, "reaction.c", "lib_hostile2.c"),
        (_name("hostile2"),),
        "impossible registration counts, a 0x42 bool, a dangling owned schema, a string "
        "array with len > cap, raw log levels, threads calling back for ever",
    ),
    "hostile_cxx": Fixture(
        ("lib_hostile_cxx.cpp",),
        (),
        "C++ plugin whose noexcept std::threads call the host callbacks for ever "
        "(skipped without a C++ compiler)",
        cxx=True,
    ),
    "services": Fixture(
        (*_SOURCE, "services.c", "lib_services.c"),
        (_name("services"),),
        "source 'services': exercises the host state store and identity provider",
    ),
    "lifetime": Fixture(
        (*_CORE, "lib_lifetime.c"),
        (_name("lifetime"),),
        "source factory 'lifetime': counts calls after drop and drops during calls",
    ),
    "selftest": Fixture(
        ("selftest.c",),
        (),
        "executable: checks every fixture library (run it under valgrind)",
        executable=True,
        link=("-ldl",),
    ),
    "chan": Fixture(
        (*_CORE, "chan_source.c"),
        (_name("chan_fixture"),),
        "sources 'rustlike' (Rust-SDK-like allocations per event) and 'probe' (receiver "
        "call counters) for the channel benchmarks and tests",
        lib="chan_fixture",
    ),
    "chan_native": Fixture(
        ("chan_native.c",),
        (),
        "executable: native baseline consuming events on the plugin's own thread",
        executable=True,
        link=("-ldl",),
    ),
    "native_consumer": Fixture(
        ("native_consumer.c",),
        (),
        "executable: native baseline consumer for the benchmarks",
        executable=True,
        link=("-ldl",),
    ),
}


def library_suffix() -> str:
    """The shared-library file suffix of this platform."""
    return ".dylib" if sys.platform == "darwin" else ".so"


def output_name(name: str) -> str:
    """File name of the build product of fixture ``name``."""
    fixture = FIXTURES[name]
    if fixture.executable:
        return name
    return f"libdrasi_{fixture.lib or name}{library_suffix()}"


def _compiler(cc: str | None) -> list[str]:
    words = shlex.split(cc or os.environ.get("CC") or "cc")
    if not words:
        raise FixtureBuildError("empty compiler command")
    return words


def cxx_compiler() -> list[str] | None:
    """The C++ compiler command ($CXX, else c++), or None when there is none."""
    words = shlex.split(os.environ.get("CXX") or "c++")
    return words if words and shutil.which(words[0]) else None


def _command(name: str, compiler: list[str], output: Path) -> list[str]:
    fixture = FIXTURES[name]
    cmd = [*compiler, *(CXX_FLAGS if fixture.cxx else BASE_FLAGS)]
    if not fixture.executable:
        cmd.append("-shared")
    cmd += [f"-I{CDEFS}", f"-I{HERE}"]
    cmd += [f"-D{d}" for d in fixture.defines]
    cmd += ["-o", str(output)]
    cmd += [str(HERE / s) for s in fixture.sources]
    cmd += list(fixture.link)
    return cmd


def _inputs(name: str) -> list[Path]:
    return [
        ABI_HEADER,
        *sorted(HERE.glob("*.h")),
        *(HERE / s for s in FIXTURES[name].sources),
    ]


def _up_to_date(output: Path, stamp: Path, command: str, inputs: list[Path]) -> bool:
    try:
        built = output.stat().st_mtime
        if stamp.read_text(encoding="utf-8") != command:
            return False
    except OSError:
        return False
    return all(p.stat().st_mtime <= built for p in inputs)


def _build_one(name: str, out_dir: Path, compiler: list[str]) -> Path:
    output = out_dir / output_name(name)
    stamp = out_dir / (output.name + ".cmd")
    command = shlex.join(_command(name, compiler, output))
    if _up_to_date(output, stamp, command, _inputs(name)):
        return output
    tmp = out_dir / f".{output.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        proc = subprocess.run(
            _command(name, compiler, tmp), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise FixtureBuildError(
            f"cannot run the C compiler {compiler[0]!r} for fixture {name!r}: {exc}"
        ) from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FixtureBuildError(
            f"building fixture {name!r} failed (exit status {proc.returncode})\n"
            f"command: {command}\n{proc.stderr.strip()}"
        )
    os.replace(tmp, output)
    stamp_tmp = stamp.with_name(tmp.name + ".cmd")
    stamp_tmp.write_text(command, encoding="utf-8")
    os.replace(stamp_tmp, stamp)
    return output


def build_fixtures(
    out_dir: Path, *, cc: str | None = None, only: Iterable[str] | None = None
) -> dict[str, Path]:
    """Build the fixtures (all, or those named in ``only``) into ``out_dir``.

    Returns a mapping of fixture name to the built file.  ``cc`` overrides the
    compiler (default: ``$CC``, else ``cc``).  C++ fixtures are built with
    :func:`cxx_compiler` and left out of the mapping when there is none (or
    their sources are absent).
    Raises :class:`FixtureBuildError` with the compiler's diagnostics when a
    build fails, and :class:`KeyError` for an unknown fixture name.
    """
    names = list(FIXTURES) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        raise KeyError(f"unknown fixture(s) {unknown}; known: {sorted(FIXTURES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compiler = _compiler(cc)
    cxx = cxx_compiler()
    # C++ fixtures are optional: skipped without a C++ compiler, or where only
    # the C sources were shipped (the demo copy inside the wheel)
    names = [
        n
        for n in names
        if not FIXTURES[n].cxx
        or (cxx is not None and all((HERE / src).is_file() for src in FIXTURES[n].sources))
    ]
    workers = max(1, min(len(names), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            n: pool.submit(_build_one, n, out, cxx if FIXTURES[n].cxx and cxx else compiler)
            for n in names
        }
        return {n: f.result() for n, f in futures.items()}


# ---- FFI 0.13 fixtures: cdefs/drasi_plugin_0_13.h, sources in v013/ -------------

V013 = HERE / "v013"
ABI_HEADER_013 = CDEFS / "drasi_plugin_0_13.h"
_V013_CORE = ("core013.c", "mpack.c", "payloads013.c", "hooks013.c")
_V013_KINDS = ("source013.c", "reaction013.c", "bootstrap013.c", "services013.c")
_V013_WITH_ALL = tuple(
    f"FX13_WITH_{k}=1" for k in ("SOURCE", "REACTION", "BOOTSTRAP", "IDENTITY", "SECRETS")
)

FIXTURES_013: dict[str, Fixture] = {
    "v013_source": Fixture(
        (*_V013_CORE, "source013.c", "bootstrap013.c"),
        ("FX13_WITH_SOURCE=1",),
        "0.13 source factory 'fixture013': MessagePack change streams and push bootstraps",
    ),
    "v013_reaction": Fixture(
        (*_V013_CORE, "reaction013.c"),
        ("FX13_WITH_REACTION=1",),
        "0.13 reaction factory 'fixture013-reaction': checks and counts query results",
    ),
    "v013_bootstrap": Fixture(
        (*_V013_CORE, "bootstrap013.c"),
        ("FX13_WITH_BOOTSTRAP=1",),
        "0.13 bootstrap factory 'fixture013-bootstrap': push-based streams with results",
    ),
    "v013_services": Fixture(
        (*_V013_CORE, "services013.c"),
        ("FX13_WITH_IDENTITY=1", "FX13_WITH_SECRETS=1"),
        "0.13 identity-provider and secret-store factories 'fixture013-identity/-secrets'",
    ),
    "v013_all": Fixture(
        (*_V013_CORE, *_V013_KINDS),
        _V013_WITH_ALL,
        "every 0.13 fixture kind in one library",
    ),
    "v013_hostile": Fixture(
        (*_V013_CORE, *_V013_KINDS),
        (*_V013_WITH_ALL, 'FX13_PREFIX="hostile013"'),
        "every 0.13 kind named 'hostile013*', for the hostile config modes",
    ),
    "v013_badsdk": Fixture(
        (*_V013_CORE, "source013.c", "bootstrap013.c"),
        ("FX13_WITH_SOURCE=1", 'FX13_SDK_VERSION="0.12.0"'),
        "0.13 layout but metadata sdk_version 0.12.0",
    ),
    "selftest013": Fixture(
        ("selftest013.c", "mpack.c"),
        (),
        "executable: drives every 0.13 fixture through its vtables (run it under valgrind)",
        executable=True,
        link=("-ldl",),
    ),
    "native013": Fixture(
        ("native013.c", "mpack.c"),
        (),
        "executable: native baseline consuming a 0.13 source's events on its push thread",
        executable=True,
        link=("-ldl",),
    ),
}


def _build_013(name: str, out_dir: Path, compiler: list[str]) -> Path:
    fixture = FIXTURES_013[name]
    suffix = "" if fixture.executable else library_suffix()
    output = out_dir / (name if fixture.executable else f"libdrasi_{name}{suffix}")

    def command(target: Path) -> list[str]:
        cmd = [*compiler, *BASE_FLAGS, *([] if fixture.executable else ["-shared"])]
        cmd += [f"-I{CDEFS}", f"-I{V013}", *(f"-D{d}" for d in fixture.defines)]
        return [*cmd, "-o", str(target), *(str(V013 / s) for s in fixture.sources), *fixture.link]

    stamp = out_dir / (output.name + ".cmd")
    text = shlex.join(command(output))
    inputs = [ABI_HEADER_013, *sorted(V013.glob("*.h")), *(V013 / s for s in fixture.sources)]
    if _up_to_date(output, stamp, text, inputs):
        return output
    tmp = out_dir / f".{output.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    proc = subprocess.run(command(tmp), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FixtureBuildError(f"building 0.13 fixture {name!r} failed\n{text}\n{proc.stderr}")
    os.replace(tmp, output)
    stamp.write_text(text, encoding="utf-8")
    return output


def build_fixtures_013(
    out_dir: Path, *, cc: str | None = None, only: Iterable[str] | None = None
) -> dict[str, Path]:
    """Build the FFI 0.13 fixtures of :data:`FIXTURES_013` (all, or ``only``)
    into ``out_dir``, like :func:`build_fixtures`; returns name -> built file."""
    names = list(FIXTURES_013) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in FIXTURES_013]
    if unknown:
        raise KeyError(f"unknown 0.13 fixture(s) {unknown}; known: {sorted(FIXTURES_013)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compiler = _compiler(cc)
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        futures = {n: pool.submit(_build_013, n, out, compiler) for n in names}
        return {n: f.result() for n, f in futures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the C fixture plugins.")
    parser.add_argument("out_dir", type=Path, help="directory for the built libraries")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these fixtures")
    parser.add_argument("--cc", help="C compiler command (default: $CC, else cc)")
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="then run the selftest executable (under valgrind when it is installed)",
    )
    args = parser.parse_args(argv)
    only = args.only
    if args.selftest and only is not None:
        only = [*only, "selftest"]
    try:
        built = build_fixtures(args.out_dir, cc=args.cc, only=only)
    except (FixtureBuildError, KeyError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, path in built.items():
        print(f"{name:16} {path}")
    if not args.selftest:
        return 0
    return run_selftest(args.out_dir, built["selftest"])


def run_selftest(out_dir: Path, selftest: Path) -> int:
    """Run the selftest executable on ``out_dir`` (under valgrind when available)."""
    cmd = [str(selftest), str(out_dir)]
    valgrind = shutil.which("valgrind")
    if valgrind:
        cmd = [valgrind, "-q", "--error-exitcode=1", "--leak-check=full", *cmd]
    print("$", shlex.join(cmd), flush=True)
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
