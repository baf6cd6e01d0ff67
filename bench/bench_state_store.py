"""State-store throughput from plugin threads, each figure printed beside a
native baseline measured in the same run.

    python bench/bench_state_store.py [--ops N] [--backend asyncio|trio]

Every figure counts single set or get calls (a step is one set and one get
of keys "bench:<i % 1000>"); ops/CPU-s divides by CPU time, which stays
meaningful when other processes load the machine (wall figures do not).

Rows:
  C table (baseline)   a plain C hash table behind a mutex, driven by a native
                       thread with the plugin's loop (bench/native_table.c)
  plugin               the ``services`` fixture plugin's own thread in ``ops``
                       mode (plugins_fixture/services.c), through the host's
                       vtable, while the event loop idles; CPU is the whole
                       process's
  native x T           T native threads calling the same vtable
                       (tests/bridges_helpers.py); CPU is theirs
  python->C            a Python thread calling the vtable's function pointers
  provider             the provider's methods called from Python

Stores: ``MemoryStateStore`` (the vtable is its native table: no Python on
the call path), ``DictStore`` (a pure-Python provider, bridged through
Python), a ``MemoryStateStore`` subclass (bridged through Python), and
``SqliteStateStore``.

Targets on a 2-core machine: MemoryStateStore >= 5M ops/s from a plugin
thread; a Python provider >= 400k ops/s with an idle loop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import cffi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bridges_helpers import (  # noqa: E402
    Caller,
    NativeDriver,
    build_services_plugin,
    run_services_plugin,
)

from drasi_host import MemoryStateStore, SqliteStateStore, StateStoreVtableBuilder  # noqa: E402

VALUE = b"v" * 32


class DictStore:
    """A pure-Python provider: one dict keyed by (store id, key)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}

    def get(self, store_id: str, key: str) -> bytes | None:
        return self.data.get((store_id, key))

    def set(self, store_id: str, key: str, value: bytes) -> None:
        self.data[(store_id, key)] = value

    def delete(self, store_id: str, key: str) -> bool:
        return self.data.pop((store_id, key), None) is not None

    def contains_key(self, store_id: str, key: str) -> bool:
        return (store_id, key) in self.data

    def get_many(self, store_id: str, keys: Any) -> dict[str, bytes]:
        return {k: self.data[(store_id, k)] for k in keys if (store_id, k) in self.data}

    def set_many(self, store_id: str, items: Any) -> None:
        for key, value in items:
            self.data[(store_id, key)] = value

    def delete_many(self, store_id: str, keys: Any) -> int:
        return sum(self.delete(store_id, k) for k in keys)

    def clear_store(self, store_id: str) -> int:
        keys = [k for k in self.data if k[0] == store_id]
        for k in keys:
            del self.data[k]
        return len(keys)

    def list_keys(self, store_id: str) -> list[str]:
        return sorted(k for s, k in self.data if s == store_id)

    def store_exists(self, store_id: str) -> bool:
        return any(s == store_id for s, _ in self.data)

    def key_count(self, store_id: str) -> int:
        return sum(1 for s, _ in self.data if s == store_id)

    def sync(self) -> None:
        return None


class SubclassedMemoryStore(MemoryStateStore):
    """A subclass: the same native table, reached through the Python bridge."""


class NativeTable:
    """bench/native_table.c, compiled on the spot."""

    def __init__(self, build_dir: Path) -> None:
        out = build_dir / ("libnative_table" + (".dylib" if sys.platform == "darwin" else ".so"))
        cc = sysconfig.get_config_var("CC") or "cc"
        subprocess.run(
            [*cc.split()[:1], "-O2", "-shared", "-fPIC", "-pthread", "-o", str(out),
             str(ROOT / "bench" / "native_table.c")],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.ffi = cffi.FFI()
        self.ffi.cdef("double table_bench(long pairs, double *cpu, long *mismatches);")
        self.lib = self.ffi.dlopen(str(out))

    def rate(self, ops: int) -> tuple[float, float]:
        cpu = self.ffi.new("double *")
        bad = self.ffi.new("long *")
        secs = self.lib.table_bench(ops // 2, cpu, bad)
        if bad[0]:
            raise SystemExit(f"the native table read {bad[0]} wrong values")
        return ops / secs, ops / cpu[0]


def provider_rate(store: Any, ops: int) -> tuple[float, float]:
    pairs = ops // 2
    t, c = time.perf_counter(), time.process_time()
    for i in range(pairs):
        key = f"bench:{i % 1000}"
        store.set("bench", key, str(i).encode())
        store.get("bench", key)
    return 2 * pairs / (time.perf_counter() - t), 2 * pairs / (time.process_time() - c)


def python_to_c_rate(store: Any, ops: int) -> tuple[float, float]:
    pairs = ops // 2
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        t, cpu = time.perf_counter(), time.process_time()
        for i in range(pairs):
            key = f"bench:{i % 1000}"
            c.set("bench", key, VALUE)
            c.get("bench", key)
        return 2 * pairs / (time.perf_counter() - t), 2 * pairs / (time.process_time() - cpu)


def native_rate(driver: NativeDriver, store: Any, threads: int, ops: int) -> tuple[float, float]:
    pairs = max(ops // (2 * threads), 1)
    with StateStoreVtableBuilder.build(store) as handle:
        secs, cpu, errors = driver.run_timed(handle.vtable, threads, pairs)
    if errors:
        raise SystemExit(f"native driver saw {errors} wrong answers")
    return 2 * pairs * threads / secs, 2 * pairs * threads / cpu


async def _plugin(library: Path, store: Any, ops: int) -> dict[str, Any]:
    return await run_services_plugin(library, "bench", store, config={"ops": ops // 2})


def plugin_rate(library: Path, store: Any, ops: int, backend: str) -> tuple[float, float]:
    cpu = time.process_time()
    report = anyio.run(_plugin, library, store, ops, backend=backend)
    cpu = time.process_time() - cpu
    if report["mismatches"] or report["failures"]:
        raise SystemExit(f"services plugin reported problems: {report}")
    return float(report["ops"]) / float(report["seconds"]), float(report["ops"]) / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2_000_000, help="calls per native figure")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    ops = args.ops

    with tempfile.TemporaryDirectory(prefix="bench-state-store-") as tmp:
        work = Path(tmp)
        print("building the services plugin and the native code ...", flush=True)
        library = build_services_plugin(work)
        driver = NativeDriver(work)
        table = NativeTable(work)

        def row(store: str, path: str, rate: tuple[float, float], base: float) -> None:
            wall, per_cpu = rate
            print(
                f"{store:22} {path:20} {wall:12,.0f} {per_cpu:12,.0f} {wall / base:10.1%}",
                flush=True,
            )

        print(f"{'store':22} {'path':20} {'ops/s':>12} {'ops/CPU-s':>12} {'vs C table':>10}")
        base = table.rate(ops)
        row("C table", "baseline", base, base[0])

        memory = MemoryStateStore()
        row("MemoryStateStore", "plugin", plugin_rate(library, memory, ops, args.backend), base[0])
        for threads in (1, 2, 4):
            rate = native_rate(driver, memory, threads, ops)
            row("MemoryStateStore", f"native x {threads}", rate, base[0])
        row("MemoryStateStore", "python->C", python_to_c_rate(memory, ops // 10), base[0])
        row("MemoryStateStore", "provider", provider_rate(memory, ops // 10), base[0])

        small = max(ops // 5, 2)
        for name, store in (
            ("DictStore (Python)", DictStore()),
            ("MemoryStateStore sub", SubclassedMemoryStore()),
        ):
            row(name, "plugin", plugin_rate(library, store, small, args.backend), base[0])
            row(name, "native x 1", native_rate(driver, store, 1, small), base[0])
            row(name, "provider", provider_rate(store, small), base[0])

        sqlite_ops = max(ops // 20, 2)
        sqlite = SqliteStateStore(work / "bench.db")
        try:
            rate = plugin_rate(library, sqlite, sqlite_ops, args.backend)
            row("SqliteStateStore", "plugin", rate, base[0])
            rate = native_rate(driver, sqlite, 1, sqlite_ops)
            row("SqliteStateStore", "native x 1", rate, base[0])
            row("SqliteStateStore", "provider", provider_rate(sqlite, sqlite_ops), base[0])
        finally:
            sqlite.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
