"""Throughput and memory of the host's hot paths, each printed beside a
baseline measured in the same run.

    python bench/bench_pipeline.py [--events N] [--results N] [--store-ops N]
                                   [--soak N] [--backend asyncio|trio]

Figures:
  events/s      C fixture source -> receiver -> ``async for`` (routing hints
                only, and with ``.change`` decoded), beside the native C
                consumer of the same plugin (``native_consumer``, the
                physical limit of the path)
  results/s     ``enqueue_query_result`` -> fixture reaction's pull loop,
                beside the native C producer feeding the same plugin
  store ops/s   set+get calls from the services plugin's own thread into a
                ``MemoryStateStore`` through the C vtable, beside the same
                plugin loop against a native C store
  memory        RSS sampled while ``--soak`` events stream (flat = bounded)

Targets on a 2-core machine: routing-hint events >= 1/3 of native, decoded
events >= 300,000/s, results >= 200,000/s, store ops >= 200,000/s, flat RSS.

Its event baseline uses the simple fixture source (one allocation per event),
which flatters the host; ``bench_channels.py`` measures events against a source
that allocates like a Rust SDK plugin, consumed natively on its own thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fixture_build", ROOT / "plugins_fixture" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _native(exe: Path, *args: str) -> float:
    out = subprocess.run([str(exe), *args], check=True, capture_output=True, text=True).stdout
    match = re.search(r"rate=([0-9.eE+]+)", out)
    if not match:
        raise RuntimeError(f"unexpected native_consumer output: {out!r}")
    return float(match.group(1))


async def _events(lib: Path, n: int, decode: bool, rss: list[float] | None = None) -> float:
    from drasi_host import CallbackContext, SourceRuntimeContext, SubscriptionSettings
    from drasi_host.loader import load_plugin

    plugin = load_plugin(lib, CallbackContext("bench"))
    source = await plugin.source_plugins[0].create_source("bench-source", {"event_count": n})
    async with source:
        await source.initialize(SourceRuntimeContext("bench", "bench-source"))
        await source.start()
        resp = await source.subscribe(SubscriptionSettings("bench-source", "q", False, [], []))
        count = 0
        started = time.perf_counter()
        async with resp.receiver:
            async for event in resp.receiver:
                if decode:
                    event.change  # noqa: B018 - decoding is the point
                count += 1
                if rss is not None and count % 1_000_000 == 0:
                    rss.append(_rss_mb())
        elapsed = time.perf_counter() - started
        await source.stop()
    plugin.close()
    assert count == n, (count, n)
    return n / elapsed


async def _results(lib: Path, n: int) -> float:
    from drasi_host import CallbackContext, QueryResult, ReactionRuntimeContext, ResultDiff
    from drasi_host.loader import load_plugin

    plugin = load_plugin(lib, CallbackContext("bench"))
    reaction = await plugin.reaction_plugins[0].create_reaction(
        "bench-reaction", ["q"], {"record": "count"}
    )
    result = QueryResult(
        "q", datetime.now(timezone.utc), [ResultDiff.add({"id": "n1", "value": 1})]
    )
    async with reaction:
        await reaction.initialize(ReactionRuntimeContext("bench", "bench-reaction"))
        await reaction.start()
        started = time.perf_counter()
        for _ in range(n):
            await reaction.enqueue_query_result(result)
        await reaction.flush()
        elapsed = time.perf_counter() - started
        await reaction.stop()
    plugin.close()
    return n / elapsed


async def _store_ops(lib: Path, n: int) -> float:
    from drasi_host import CallbackContext, MemoryStateStore, SourceRuntimeContext
    from drasi_host.loader import load_plugin

    store = MemoryStateStore()
    plugin = load_plugin(lib, CallbackContext("bench"))
    source = await plugin.source_plugins[0].create_source("bench-services", {"ops": n})
    async with source:
        await source.initialize(SourceRuntimeContext("bench", "bench-services", state_store=store))
        await source.start()
        while store.get("bench-services", "report") is None:
            await anyio.sleep(0.01)
        await source.stop()
    plugin.close()
    report = json.loads(store.get("bench-services", "report") or b"{}")
    return float(report["ops"]) / float(report["seconds"])


def _line(name: str, value: float, baseline: float, target: str) -> None:
    ratio = value / baseline if baseline else float("nan")
    print(
        f"{name:34} {value:>14,.0f}/s   baseline {baseline:>14,.0f}/s"
        f"   ratio {ratio:5.2f}   target {target}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--results", type=int, default=500_000)
    parser.add_argument("--store-ops", type=int, default=500_000)
    parser.add_argument(
        "--soak", type=int, default=10_000_000, help="events for the memory check (0: skip)"
    )
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()

    built = _builder().build_fixtures(
        Path(os.environ.get("DRASI_BENCH_BUILD", "/tmp/drasi-bench-plugins"))
    )
    native = built["native_consumer"]
    source, reaction, services = built["source"], built["reaction"], built["services"]
    backend = args.backend
    print(f"python {sys.version.split()[0]}, backend {backend}, {os.cpu_count()} cpus")

    base_events = _native(native, "events", str(source), str(args.events))
    hints = anyio.run(_events, source, args.events, False, backend=backend)
    decoded = anyio.run(_events, source, args.events, True, backend=backend)
    _line("events, routing hints only", hints, base_events, ">= 1/3 of native")
    _line("events, .change decoded", decoded, base_events, ">= 300,000/s")

    base_results = _native(native, "results", str(reaction), str(args.results))
    results = anyio.run(_results, reaction, args.results, backend=backend)
    _line("query results into reaction", results, base_results, ">= 200,000/s")

    base_store = _native(native, "store", str(services), str(args.store_ops))
    store = anyio.run(_store_ops, services, args.store_ops, backend=backend)
    _line("state-store ops from plugin thread", store, base_store, ">= 200,000/s")

    if args.soak:
        samples: list[float] = [_rss_mb()]
        rate = anyio.run(_events, source, args.soak, False, samples, backend=backend)
        samples.append(_rss_mb())
        print(
            f"memory over {args.soak:,} events ({rate:,.0f}/s): RSS MB "
            + " ".join(f"{s:.0f}" for s in samples)
            + f"   growth after the first million: {samples[-1] - samples[1]:+.1f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
