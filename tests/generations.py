"""The two ABI generations side by side, for tests parametrised over both
(the ``gen`` fixture of ``conftest.py``): which fixture library provides
each kind of component, how its counters are read, and where the 0.4 and
0.13 fixtures behave differently by design."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abi013_helpers import STATS013_FFI, read_stats013

from drasi_host import ComponentStatus

ROOT = Path(__file__).resolve().parents[1]

_stats013_libs: dict[Path, Any] = {}


def stats013(path: Path) -> dict[str, int]:
    """The counters of the loaded 0.13 fixture library at ``path``."""
    lib = _stats013_libs.get(path)
    if lib is None:
        lib = _stats013_libs[path] = STATS013_FFI.dlopen(str(path))
    return read_stats013(lib)


@dataclass(frozen=True)
class Gen:
    """One generation's fixtures."""

    abi: str
    source_lib: Path
    reaction_lib: Path
    bootstrap_lib: Path
    read_stats: Callable[[Path], dict[str, int]]
    #: A source configuration the source factory refuses, and a piece of
    #: the text the refusal carries.
    refused_source_config: dict[str, Any]
    refused_text: str
    #: The status each fixture reports after ``initialize`` and after ``deprovision``.
    initialized_status: ComponentStatus
    deprovisioned_status: ComponentStatus
    #: The type names of the fixture reaction and source.
    reaction_type: str = ""
    source_type: str = ""
    #: The statuses the source's lifecycle callbacks report for a start and a stop.
    lifecycle_statuses: tuple[ComponentStatus, ...] = ()
    #: Counter names: objects dropped, by kind ("source", "reaction", "bootstrap").
    dropped_counters: dict[str, str] = field(default_factory=dict)
    #: The source configuration key of the number of change events.
    count_key: str = "event_count"
    #: A provider configuration whose bootstrap fails, and the failure's text.
    bootstrap_fail_config: dict[str, Any] = field(default_factory=dict)
    bootstrap_fail_text: str = ""
    #: The sequence number of a provider's first bootstrap record.
    first_sequence: int = 0
    #: Counter names: payloads handed to the host, and released.
    payload_counters: tuple[str, str] = ("events_created", "events_released")

    def __str__(self) -> str:
        return self.abi

    def dropped(self, kind: str) -> int:
        """How many objects of ``kind`` the fixture library has dropped."""
        lib = {"source": self.source_lib, "reaction": self.reaction_lib}.get(
            kind, self.bootstrap_lib
        )
        return self.read_stats(lib)[self.dropped_counters[kind]]

    def source_config(self, count: int, bootstrap_count: int = 0) -> dict[str, Any]:
        """A fixture source configuration: ``count`` change events per
        subscription, ``bootstrap_count`` bootstrap records."""
        return {self.count_key: count, "bootstrap_count": bootstrap_count}

    def payloads(self, path: Path) -> tuple[int, int]:
        """(payloads handed to the host, payloads released) of the library."""
        stats = self.read_stats(path)
        made, released = self.payload_counters
        return stats[made], stats[released]

    def lifecycle_calls(self) -> int:
        """The source library's count of plugin lifecycle callbacks (each
        start and stop of a fixture source makes at least one)."""
        return self.read_stats(self.source_lib)["lifecycle_calls"]


def make_gen(
    abi: str,
    fixtures: dict[str, Path],
    fixtures_013: dict[str, Path],
    stats: Callable[[Path], dict[str, int]],
) -> Gen:
    if abi == "0.4":
        return Gen(
            abi=abi,
            source_lib=fixtures["source"],
            reaction_lib=fixtures["reaction"],
            bootstrap_lib=fixtures["bootstrap"],
            read_stats=stats,
            refused_source_config={"event_count": "many"},
            refused_text="'event_count' must be an integer",
            initialized_status=ComponentStatus.STOPPED,
            deprovisioned_status=ComponentStatus.STOPPED,
            reaction_type="fixture",
            source_type="fixture",
            lifecycle_statuses=(
                ComponentStatus.STARTING,
                ComponentStatus.RUNNING,
                ComponentStatus.STOPPING,
                ComponentStatus.STOPPED,
            ),
            dropped_counters={
                "source": "sources_dropped",
                "reaction": "reactions_dropped",
                "bootstrap": "providers_dropped",
            },
            bootstrap_fail_config={"fail": True},
            bootstrap_fail_text="'fail' is set",
        )
    return Gen(
        abi=abi,
        source_lib=fixtures_013["v013_source"],
        reaction_lib=fixtures_013["v013_reaction"],
        bootstrap_lib=fixtures_013["v013_bootstrap"],
        read_stats=stats013,
        refused_source_config={"mode": "fail", "reason": "the configuration says so"},
        refused_text="create refused: the configuration says so",
        initialized_status=ComponentStatus.ADDED,
        deprovisioned_status=ComponentStatus.REMOVED,
        reaction_type="fixture013-reaction",
        source_type="fixture013",
        lifecycle_statuses=(ComponentStatus.RUNNING, ComponentStatus.STOPPED),
        dropped_counters=dict.fromkeys(("source", "reaction", "bootstrap"), "objects_dropped"),
        count_key="count",
        bootstrap_fail_config={"mode": "bootfail"},
        bootstrap_fail_text="fixture013 bootstrap failed: source unavailable",
        first_sequence=1,
        payload_counters=("payloads_created", "payloads_released"),
    )
