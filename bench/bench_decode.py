"""Decoded source events per second, each figure beside a baseline measured
in the same run.

    python bench/bench_decode.py [--events N] [--backend asyncio|trio|both]

Figures:
  codec decode   the change payloads the fixture source plugin really sends
                 (captured from a run), decoded again and again:
                 ``JsonCodec.decode_change`` (typed msgspec decoder straight
                 into the model) beside the same bytes through untyped
                 ``msgspec.json.decode`` alone (parsing, no model: the floor),
                 the field-by-field path (``load_document`` +
                 ``change_from_document``) and the former stdlib path
                 (``json.loads`` + ``change_from_document``); the same for
                 MessagePack (the payloads re-encoded)
  encode         ``encode_change`` of the decoded changes, both formats
  end to end     fixture source plugin -> receiver -> ``async for`` with
                 ``event.change`` read (decoded) and without (routing hints
                 only), beside the native C consumer of the same plugin
                 (plugins_fixture/native_consumer.c, the limit of the path);
                 the CPU figure divides by the whole process's CPU time,
                 the plugin's producing thread included

Target on a 2-core machine: >= 300,000 decoded events/s end to end, under
asyncio and trio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import _builder, _events, _native  # noqa: E402

from drasi_host.models import SourceChange  # noqa: E402
from drasi_host.payloads import JsonCodec, MsgpackCodec, change_from_document  # noqa: E402


async def _capture(lib: Path, n: int) -> list[bytes]:
    """The payload bytes of ``n`` events of the fixture source."""
    from drasi_host import CallbackContext, SourceRuntimeContext, SubscriptionSettings
    from drasi_host.loader import load_plugin

    payloads: list[bytes] = []
    plugin = load_plugin(lib, CallbackContext("bench"))
    source = await plugin.source_plugins[0].create_source("bench-source", {"event_count": n})
    async with source:
        await source.initialize(SourceRuntimeContext("bench", "bench-source"))
        await source.start()
        resp = await source.subscribe(SubscriptionSettings("bench-source", "q", False, [], []))
        async with resp.receiver:
            async for event in resp.receiver:
                assert event.payload is not None
                payloads.append(event.payload)
        await source.stop()
    plugin.close()
    return payloads


def _rate(fn: Callable[[Any], object], items: list[Any], rounds: int) -> tuple[float, float]:
    """(calls per wall second, calls per CPU second) of ``fn`` over ``items``."""
    t, c = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for item in items:
            fn(item)
    n = rounds * len(items)
    return n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)


def _line(name: str, rate: tuple[float, float], baseline: float, base_name: str) -> None:
    wall, cpu = rate
    print(
        f"{name:44} {wall:12,.0f}/s {cpu:12,.0f}/CPU-s   {wall / baseline:6.1%} of {base_name}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events end to end")
    parser.add_argument("--sample", type=int, default=20_000, help="captured payloads")
    parser.add_argument("--rounds", type=int, default=10, help="passes over the sample")
    parser.add_argument("--backend", default="both", choices=["asyncio", "trio", "both"])
    args = parser.parse_args()

    built = _builder().build_fixtures(
        Path(os.environ.get("DRASI_BENCH_BUILD", "/tmp/drasi-bench-plugins"))
    )
    source, native = built["source"], built["native_consumer"]
    print(f"python {sys.version.split()[0]}, msgspec {msgspec.__version__}, {os.cpu_count()} cpus")

    payloads = anyio.run(_capture, source, args.sample)
    size = sum(map(len, payloads)) / len(payloads)
    print(f"captured {len(payloads):,} fixture payloads, {size:.0f} bytes on average")
    codec = JsonCodec()
    packer = MsgpackCodec()
    changes: list[SourceChange] = [codec.decode_change(p) for p in payloads]
    packed = [packer.encode_change(c) for c in changes]
    assert [packer.decode_change(p) for p in packed] == changes

    rounds = args.rounds
    floor = _rate(msgspec.json.decode, payloads, rounds)
    _line("json: msgspec.json.decode (no model)", floor, floor[0], "untyped parse")
    _line("json: JsonCodec.decode_change", _rate(codec.decode_change, payloads, rounds),
          floor[0], "untyped parse")  # fmt: skip
    _line("json: load_document + change_from_document",
          _rate(lambda p: change_from_document(codec.load_document(p)), payloads, rounds),
          floor[0], "untyped parse")  # fmt: skip
    _line("json: stdlib json.loads + change_from_document",
          _rate(lambda p: change_from_document(json.loads(p)), payloads, rounds),
          floor[0], "untyped parse")  # fmt: skip
    mp_floor = _rate(msgspec.msgpack.decode, packed, rounds)
    _line("msgpack: msgspec.msgpack.decode (no model)", mp_floor, mp_floor[0], "untyped parse")
    _line("msgpack: MsgpackCodec.decode_change", _rate(packer.decode_change, packed, rounds),
          mp_floor[0], "untyped parse")  # fmt: skip
    enc_floor = _rate(msgspec.json.encode, [json.loads(p) for p in payloads], rounds)
    _line("json: msgspec.json.encode of the dicts", enc_floor, enc_floor[0], "dict encode")
    _line("json: JsonCodec.encode_change", _rate(codec.encode_change, changes, rounds),
          enc_floor[0], "dict encode")  # fmt: skip
    _line("msgpack: MsgpackCodec.encode_change", _rate(packer.encode_change, changes, rounds),
          enc_floor[0], "dict encode")  # fmt: skip

    base = _native(native, "events", str(source), str(args.events))
    print(f"{'native C consumer (baseline)':44} {base:12,.0f}/s")
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    for backend in backends:
        for decode, what in ((False, "routing hints only"), (True, ".change decoded")):
            cpu = time.process_time()
            rate = anyio.run(_events, source, args.events, decode, backend=backend)
            per_cpu = args.events / (time.process_time() - cpu)
            target = "   target >= 300,000/s" if decode else ""
            print(
                f"{'end to end, ' + backend + ', ' + what:44} {rate:12,.0f}/s {per_cpu:12,.0f}"
                f"/CPU-s   {rate / base:6.1%} of native{target}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
