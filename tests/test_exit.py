"""Interpreter exit while plugin threads keep calling the host.

A plugin's threads may call the host's log, lifecycle and state-store
callbacks at any moment, also while the interpreter shuts down.  The host
must let the calls already inside Python finish (for a bounded time), answer
every later call with its failure value without entering Python, and so exit
with status 0: no thread may be unwound inside a finalising interpreter (a C++
plugin's noexcept thread would take the whole process down with
``terminate called without an active exception``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import anyio, cffi

    from drasi_host import CallbackContext, MemoryStateStore, SourceRuntimeContext
    from drasi_host.loader import load_plugin

    path, flavour, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    callbacks = CallbackContext("exit-test")
    plugin = load_plugin(path, callbacks)
    ffi = cffi.FFI()
    store = MemoryStateStore()
    if len(sys.argv) > 4:
        marks = open(sys.argv[4], "a", buffering=1)

        class SlowStore(MemoryStateStore):
            def set(self, store_id: str, key: str, value: bytes) -> None:
                marks.write("B\\n")
                time.sleep(0.2)
                super().set(store_id, key, value)
                marks.write("E\\n")

        store = SlowStore()
    if flavour == "c":
        ffi.cdef(
            "int drasi_hostile2_storm_global(int n); void drasi_hostile2_set_storm(int n);"
            "uint64_t drasi_hostile2_storm_calls(void);"
        )
        hooks = ffi.dlopen(str(path))
        hooks.drasi_hostile2_set_storm(threads)
        storm = next(f for f in plugin.source_plugins if f.kind == "storm")

        async def start() -> object:
            source = await storm.create_source("storm", auto_start=False)
            await source.initialize(
                SourceRuntimeContext("exit-test", "storm", state_store=store)
            )
            await source.start()
            return source

        keep = anyio.run(start)
        assert hooks.drasi_hostile2_storm_global(threads) == 0
        calls = hooks.drasi_hostile2_storm_calls
    else:
        ffi.cdef("int drasi_hostile_cxx_storm(int n); uint64_t drasi_hostile_cxx_calls(void);")
        hooks = ffi.dlopen(str(path))
        assert hooks.drasi_hostile_cxx_storm(threads) == 0
        calls = hooks.drasi_hostile_cxx_calls
    deadline = time.monotonic() + 10
    while calls() < 2000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls() >= 2000, calls()
    print("storming", calls(), flush=True)
    # leave with everything open and the threads still calling
    """
)


def _run(path: Path, flavour: str, threads: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore::ResourceWarning",
            "-c",
            _SCRIPT,
            str(path),
            flavour,
            str(threads),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str]) -> None:
    detail = f"exit status {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == 0, detail
    assert "storming" in proc.stdout, detail
    assert "terminate called" not in proc.stderr, detail
    assert "Fatal Python error" not in proc.stderr, detail


@pytest.mark.parametrize("round_", range(2))
def test_exit_while_c_threads_call_back(fixture_plugins: dict[str, Path], round_: int) -> None:
    """Logs, lifecycle events and state-store calls from 8 + 8 threads."""
    _check(_run(fixture_plugins["hostile2"], "c", 8))


@pytest.mark.parametrize("round_", range(2))
def test_exit_while_cxx_threads_call_back(fixture_plugins: dict[str, Path], round_: int) -> None:
    if "hostile_cxx" not in fixture_plugins:
        pytest.skip("no C++ compiler")
    _check(_run(fixture_plugins["hostile_cxx"], "cxx", 16))


def test_exit_waits_for_callbacks_in_flight(
    fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    """A state-store call that is inside Python when the interpreter exits
    (each ``set`` sleeps 0.2 s) runs to its end: every call that began also
    finished, and none began after exit refused new calls."""
    marks = tmp_path / "marks"
    proc = _run(fixture_plugins["hostile2"], "c", 4, str(marks))
    _check(proc)
    lines = marks.read_text().split()
    assert lines.count("B") >= 1
    assert lines.count("B") == lines.count("E"), lines
