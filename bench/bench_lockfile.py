"""What a lockfile check costs per plugin load, beside a native baseline.

    python bench/bench_lockfile.py [--sizes-mib 1,16,64] [--repeat 5]

For each file size: ``PluginLockfile.check`` (read the lockfile, hash the
file with SHA-256, compare), beside ``sha256sum`` (coreutils, native) hashing
the same file in the same run.  The file is read from the page cache in both
(one warm-up read first).  Best of ``--repeat`` runs, in MiB/s and ms.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from drasi_host import IntegrityStatus, LockEntry, PluginLockfile


def _best(repeat: int, run: object) -> float:
    assert callable(run)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="1,16,64")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sha256sum = shutil.which("sha256sum")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print(f"{'size':>8} {'lock.check':>22} {'sha256sum (native)':>24}")
        for size_mib in (int(s) for s in args.sizes_mib.split(",")):
            path = directory / "libdrasi_source_bench.so"
            data = os.urandom(size_mib * 1024 * 1024)
            path.write_bytes(data)
            lock = PluginLockfile(
                directory / "plugins.lock",
                [
                    LockEntry(
                        reference="registry.example/source/bench:1",
                        digest="sha256:" + "0" * 64,
                        file_name=path.name,
                        file_sha256=hashlib.sha256(data).hexdigest(),
                    )
                ],
            )
            lock.save()

            def check(lock_path: Path = lock.path, file: Path = path) -> None:
                status = PluginLockfile.load(lock_path).check(file)
                assert status is IntegrityStatus.OK

            check()  # warm the page cache
            ours = _best(args.repeat, check)
            line = f"{size_mib:>5} MiB {size_mib / ours:>10.0f} MiB/s {ours * 1000:>7.1f} ms"
            if sha256sum is not None:

                def native(file: Path = path) -> None:
                    subprocess.run([sha256sum, str(file)], check=True, capture_output=True)

                base = _best(args.repeat, native)
                line += f" {size_mib / base:>12.0f} MiB/s {base * 1000:>7.1f} ms"
            else:
                line += f" {'(no sha256sum)':>24}"
            print(line)


if __name__ == "__main__":
    main()
