"""Events of an FFI 0.13 source through the host, beside the same measurement
for a 0.4 source and native C baselines of both, measured in the same run.

    python bench/bench_abi013.py [--events N] [--repeat R] [--backends asyncio,trio]

The 0.13 events come from the ``fixture013`` source of
``libdrasi_v013_source`` with ``"alloc": "rustlike"``, which makes each event
cost the heap work of a Rust SDK plugin: besides the two blocks it hands over
(the MessagePack ``SourceEventPayload`` buffer, grown by doubling from 64
bytes - one malloc and 2 or 3 reallocs - and the ``FfiSourceEvent``
envelope), its push thread builds the event's in-memory model as separate
heap blocks (Arc<str> ids and labels, BTreeMap nodes, property keys and
string values, the event wrapper; 13.5 blocks per event on average over its
cycle of node insert, node update, relation insert and node delete) and frees
them after serialising.  Payloads average 352 bytes, every property type of
ABI-0.13.md section 12.2 included.

The 0.4 events come from the ``rustlike`` source of ``libdrasi_chan_fixture``
(six heap blocks per event, a JSON document), as in ``bench_channels.py``.

Host figures, each under asyncio and trio:

  hints       ``async for event in receiver`` reading ``event.source_id``,
              ``event.label`` and ``event.entity_id`` (for 0.13 these come
              from the MessagePack payload; for 0.4 from the envelope)
  .change     the same loop decoding ``event.change``
  batches()   ``async for batch in receiver.batches()``, counting ``len``

Native baselines (C programs, no Python, no channel, on the plugin's own push
thread): ``native013`` (plugins_fixture/v013/native013.c) does per 0.13 event
what the host must do at the least - copies the payload, reads source id,
first label and element id with a minimal MessagePack reader, calls
``payload_drop_fn`` and ``free()``s the envelope; ``chan_native`` does the
0.4 equivalent (reads the hints, copies the payload, releases the event).
Each ratio is against the native baseline of the same generation.

Each figure is the best of ``--repeat`` rounds; a round measures everything
once, baselines included, so all see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from drasi_host import CallbackContext, SourceRuntimeContext, SubscriptionSettings
from drasi_host.loader import load_plugin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_channels import _native
from bench_pipeline import _builder

#: Extra configuration of the 0.13 fixture source for Rust-like allocations.
RUSTLIKE_013 = ', "alloc": "rustlike"'


async def _drive(lib: Path, config: dict[str, Any], n: int, mode: str) -> float:
    """Events per second of the first source of ``lib`` through the host:
    ``mode`` is ``"hints"``, ``"change"`` or ``"batches"``."""
    plugin = load_plugin(lib, CallbackContext("bench"))
    source = await plugin.source_plugins[0].create_source("bench", config)
    count = 0
    routed = 0
    async with source:
        await source.initialize(SourceRuntimeContext("bench", "bench"))
        await source.start()
        resp = await source.subscribe(SubscriptionSettings("bench", "q", False, [], []))
        started = time.perf_counter()
        async with resp.receiver as receiver:
            if mode == "batches":
                async for batch in receiver.batches():
                    count += len(batch)
            elif mode == "change":
                async for event in receiver:
                    count += event.change is not None
            else:
                async for event in receiver:
                    count += 1
                    routed += len(event.source_id) + len(event.label) + len(event.entity_id) > 0
        elapsed = time.perf_counter() - started
        await source.stop()
    await plugin.aclose()
    if count != n or (mode == "hints" and routed != n):
        raise RuntimeError(f"{lib.name} {mode}: {count} of {n} events ({routed} routed)")
    return n / elapsed


def _line(name: str, value: float, baseline: float, base_name: str) -> None:
    ratio = value / baseline if baseline else float("nan")
    print(f"{name:44} {value:>12,.0f}/s   {ratio:5.2f}x {base_name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is shown)")
    parser.add_argument("--backends", default="asyncio,trio")
    args = parser.parse_args()

    builder = _builder()
    out = Path(os.environ.get("DRASI_BENCH_BUILD", "/tmp/drasi-bench-plugins"))
    built = builder.build_fixtures(out, only=["chan", "chan_native"])
    built013 = builder.build_fixtures_013(out, only=["v013_source", "native013"])
    lib013, native013 = built013["v013_source"], built013["native013"]
    lib04, native04 = built["chan"], built["chan_native"]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + f", {args.events:,} events, best of {args.repeat}"
    )

    n = args.events
    backends = args.backends.split(",")
    config013: dict[str, Any] = {"count": n, "alloc": "rustlike"}
    config04: dict[str, Any] = {"event_count": n}
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    for _ in range(args.repeat):
        keep("native 0.13", _native(str(native013), str(lib013), str(n), RUSTLIKE_013))
        keep("native 0.4", _native(str(native04), str(lib04), str(n)))
        for backend in backends:
            for mode in ("hints", "change", "batches"):
                keep(f"0.13 {mode} {backend}",
                     anyio.run(_drive, lib013, config013, n, mode, backend=backend))  # fmt: skip
                keep(f"0.4 {mode} {backend}",
                     anyio.run(_drive, lib04, config04, n, mode, backend=backend))  # fmt: skip

    labels = {"hints": "async for, hints", "change": "async for, .change", "batches": "batches()"}
    for abi, native in (("0.13", "native 0.13"), ("0.4", "native 0.4")):
        print(f"{native + ' (C consumer on the push thread)':44} {best[native]:>12,.0f}/s")
        for backend in backends:
            for mode, label in labels.items():
                _line(f"{abi} {label} ({backend})", best[f"{abi} {mode} {backend}"],
                      best[native], f"of {native}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
