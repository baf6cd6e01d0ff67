"""FFI 0.13 MessagePack codec throughput (drasi_host._msgpack013), each figure
printed beside baselines measured in the same run on the same bytes.

    python bench/bench_msgpack013.py [--seconds S]

Documents: a node insert with six properties of every value type (what the
0.13 fixture source sends), a relation bootstrap record, and a query result
with three diffs.  Figures, per document kind:

  decode        full strict decode into the decoded form (properties included)
  peek          routing hints only (typed decode that skips the properties)
  encode        canonical encoding from the decoded form
  msgspec raw   baseline: msgspec's untyped C decode into dicts and lists,
                no checking
  msgpack raw   baseline: the msgpack package's C unpackb, no checking
  native C      baseline: a C loop (plugins_fixture/v013/mpack.c, compiled on
                the spot with -O2) walking and bounds-checking every value of
                the same bytes, no Python objects
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drasi_host import _msgpack013 as mp  # noqa: E402
from drasi_host.models import ChangeOp  # noqa: E402

_NATIVE = r"""
#define _POSIX_C_SOURCE 200809L
#include "mpack.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    double seconds = atof(argv[2]);
    struct timespec a, b;
    long count = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        for (int i = 0; i < 1000; i++) {
            Mpr r = {buf, buf + n};
            if (mpr_skip(&r) || r.p != r.end) return 1;
        }
        count += 1000;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < seconds);
    printf("%.1f\n", count / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
    return 0;
}
"""


def _documents() -> dict[str, tuple[bytes, Callable[[bytes], Any], Callable[[Any], bytes], Any]]:
    element = mp.Element(
        "node",
        mp.ElementReference("s1", "n42"),
        ("Person",),
        1_700_000_000_000,
        {
            "addr": {"city": "Oslo"},
            "age": 42,
            "name": "p42",
            "score": 42.5,
            "tags": [1, None],
            "when": datetime(2024, 6, 15, 13, 45, 30),
        },
    )
    event = mp.SourceEventPayload(
        "s1", 1_700_000_000_000_042, mp.Change(ChangeOp.INSERT, element), None, 43, None
    )
    relation = mp.Element(
        "relation",
        mp.ElementReference("s1", "r1"),
        ("KNOWS",),
        0,
        {"since": datetime(2024, 6, 15, 13, 45, 30, tzinfo=timezone(timedelta(hours=2)))},
        in_node=mp.ElementReference("s1", "1"),
        out_node=mp.ElementReference("s1", "2"),
    )
    record = mp.BootstrapEventPayload(
        "s1", 1_700_000_000_000_000, mp.Change(ChangeOp.INSERT, relation), None, 1
    )
    result = mp.QueryResult(
        "q1",
        datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc),
        [
            mp.ResultDiff("ADD", data={"name": "Ada", "age": 36}, row_signature=42),
            mp.ResultDiff("UPDATE", data={"n": 2}, before={"n": 1}, after={"n": 2}),
            mp.ResultDiff("aggregation", before=None, after={"c": 1}, row_signature=7),
        ],
        {},
        sequence=3,
    )
    return {
        "source event": (
            mp.encode_source_event(event),
            mp.decode_source_event,
            mp.encode_source_event,
            mp.peek_source_event,
        ),
        "bootstrap record": (
            mp.encode_bootstrap_event(record),
            mp.decode_bootstrap_event,
            mp.encode_bootstrap_event,
            mp.peek_bootstrap_event,
        ),
        "query result": (
            mp.encode_query_result(result),
            mp.decode_query_result,
            mp.encode_query_result,
            None,
        ),
    }


def _rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second of the fastest of three runs (the machine is shared)."""
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(200):
                fn()
            count += 200
        best = max(best, count / elapsed)
    return best


def _native(doc: bytes, seconds: float, work: Path) -> float | None:
    cc = shutil.which("cc")
    if cc is None:
        return None
    exe = work / "walk"
    if not exe.exists():
        (work / "walk.c").write_text(_NATIVE, encoding="utf-8")
        v013 = ROOT / "plugins_fixture" / "v013"
        subprocess.run(
            [
                cc,
                "-O2",
                "-std=c11",
                f"-I{v013}",
                "-o",
                str(exe),
                str(work / "walk.c"),
                str(v013 / "mpack.c"),
            ],
            check=True,
        )
    (work / "doc.bin").write_bytes(doc)
    out = subprocess.run(
        [str(exe), str(work / "doc.bin"), str(seconds / 3)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per figure")
    args = parser.parse_args()
    raw = msgspec.msgpack.Decoder()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (doc, decode, encode, peek) in _documents().items():
            decoded = decode(doc)
            figures: list[tuple[str, float | None]] = [
                ("decode", _rate(partial(decode, doc), args.seconds)),
                ("peek", _rate(partial(peek, doc), args.seconds) if peek else None),
                ("encode", _rate(partial(encode, decoded), args.seconds)),
                ("msgspec raw", _rate(partial(raw.decode, doc), args.seconds)),
                ("msgpack raw", _rate(partial(msgpack.unpackb, doc), args.seconds)),
                ("native C", _native(doc, args.seconds, Path(tmp))),
            ]
            print(f"{name} ({len(doc)} bytes)")
            for label, rate in figures:
                if rate is not None:
                    print(f"  {label:12} {rate:12,.0f} docs/s  {1e6 / rate:8.2f} us/doc")


if __name__ == "__main__":
    main()
