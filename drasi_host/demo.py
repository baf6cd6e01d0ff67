"""``drasi-host demo``: a source plugin → Python → reaction plugin pipeline.

The demo plugins are the C example plugins of this project (the source and
reaction of ``plugins_fixture/``).  A wheel carries their sources; unless
``--plugins DIR`` names prebuilt ones, the demo compiles them with the
machine's C compiler (``$CC``, else ``cc``) into a cache directory named after
a hash of the sources and the compiler command, so a build is reused only
for exactly the same input.  The reaction keeps what it receives in a SQLite
state store in a temporary directory; at the end the demo compares what the
reaction recorded with what Python sent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

from .bridges.state_store import SqliteStateStore
from .errors import ConfigurationError, DrasiHostError
from .loader import load_plugin
from .logs import CallbackContext
from .models import (
    ChangeOp,
    QueryResult,
    ReactionRuntimeContext,
    ResultDiff,
    SourceRuntimeContext,
    SubscriptionSettings,
)

__all__ = ["DEMO_FIXTURES", "build_demo_plugins", "demo_cache_dir", "run_demo"]

_PKG = Path(__file__).resolve().parent


#: The fixtures of ``plugins_fixture/build.py`` the demo builds.
DEMO_FIXTURES = ("source", "reaction")


def _builder() -> Any:
    for candidate in (
        _PKG / "_demo" / "plugins_fixture" / "build.py",  # inside a wheel
        _PKG.parent / "plugins_fixture" / "build.py",  # a source checkout
    ):
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("drasi_host_demo_build", candidate)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise DrasiHostError(
        "the demo plugin sources are not installed with this package; "
        "pass --plugins DIR with prebuilt demo plugins"
    )


def _compiler_words() -> list[str]:
    words = shlex.split(os.environ.get("CC") or "cc")
    if not words or shutil.which(words[0]) is None:
        name = words[0] if words else "$CC"
        raise DrasiHostError(
            f"no C compiler found ({name!r}): the demo compiles its plugins from C sources; "
            "install one (e.g. gcc) or set CC, or pass --plugins DIR with prebuilt demo plugins"
        )
    return words


def demo_cache_dir(builder: Any, compiler: list[str]) -> Path:
    """Where the demo plugins built from these sources with this compiler live:
    ``$XDG_CACHE_HOME/drasi-host/demo-plugins/<hash>`` (``~/.cache`` by default);
    ``demo-plugins/latest`` points at the one the last demo used."""
    digest = hashlib.sha256()
    digest.update(repr((compiler, builder.BASE_FLAGS)).encode())
    files = {builder.ABI_HEADER, *builder.HERE.glob("*.h")}
    for name in DEMO_FIXTURES:
        fixture = builder.FIXTURES[name]
        digest.update(repr((name, fixture.sources, fixture.defines, fixture.link)).encode())
        files.update(builder.HERE / source for source in fixture.sources)
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "drasi-host" / "demo-plugins" / digest.hexdigest()[:16]


def build_demo_plugins(out_dir: Path | None = None) -> dict[str, Path]:
    """Compile the demo source and reaction plugins into ``out_dir`` (default:
    the content-keyed cache directory, where existing builds are reused)."""
    builder = _builder()
    compiler = _compiler_words()
    target = out_dir or demo_cache_dir(builder, compiler)
    try:
        built: dict[str, Path] = builder.build_fixtures(
            target, cc=shlex.join(compiler), only=list(DEMO_FIXTURES)
        )
    except builder.FixtureBuildError as exc:
        raise DrasiHostError(f"building the demo plugins failed: {exc}") from exc
    return built


def _point_latest(cache: Path) -> None:
    """Make ``demo-plugins/latest`` point at ``cache`` (the last build used)."""
    link = cache.parent / "latest"
    tmp = cache.parent / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(cache.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # no symbolic links here: the hashed path still works
        tmp.unlink(missing_ok=True)


def _find(plugin_dir: Path, stem: str) -> Path:
    if not plugin_dir.is_dir():
        raise ConfigurationError(f"--plugins {plugin_dir}: not a directory")
    for suffix in (".so", ".dylib", ".dll"):
        path = plugin_dir / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise ConfigurationError(f"--plugins {plugin_dir}: no {stem}.so/.dylib in this directory")


async def _pipeline(source_lib: Path, reaction_lib: Path, events: int, say: Any) -> int:
    callbacks = CallbackContext(instance_id="demo")
    with tempfile.TemporaryDirectory(prefix="drasi-demo-") as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        source_plugin = load_plugin(source_lib, callbacks)
        reaction_plugin = load_plugin(reaction_lib, callbacks)
        say(f"loaded {source_lib.name} ({source_plugin.payload_format}) and {reaction_lib.name}")
        source = await source_plugin.source_plugins[0].create_source(
            "demo-source", {"event_count": events, "bootstrap_count": 3}
        )
        reaction = await reaction_plugin.reaction_plugins[0].create_reaction(
            "demo-reaction", ["demo-query"], {"record": "store"}
        )
        started = time.perf_counter()
        ops: Counter[str] = Counter()
        sent = 0
        sent_bytes = 0
        async with source, reaction:
            await source.initialize(SourceRuntimeContext("demo", "demo-source", state_store=store))
            await reaction.initialize(
                ReactionRuntimeContext("demo", "demo-reaction", state_store=store)
            )
            await reaction.start()
            await source.start()
            say(
                f"source status {(await source.status()).name}, "
                f"reaction status {(await reaction.status()).name}"
            )
            response = await source.subscribe(
                SubscriptionSettings("demo-source", "demo-query", True, ["Person"], ["KNOWS"])
            )
            if response.bootstrap_receiver is not None:
                async with response.bootstrap_receiver:
                    async for boot in response.bootstrap_receiver:
                        say(f"  bootstrap #{boot.sequence}: {boot.label} {boot.entity_id}")
            async with response.receiver:
                async for event in response.receiver:
                    change = event.change
                    assert change is not None
                    ops[event.op.name] += 1
                    data = {
                        "id": event.entity_id,
                        "label": event.label,
                        **change.element.properties,
                    }
                    if event.op is ChangeOp.INSERT:
                        diff = ResultDiff.add(data)
                    elif event.op is ChangeOp.DELETE:
                        diff = ResultDiff.delete(data)
                    else:
                        diff = ResultDiff.update(data, data, data)
                    result = QueryResult("demo-query", datetime.now(timezone.utc), [diff])
                    sent_bytes += await reaction.enqueue_query_result(result)
                    sent += 1
                    if sent <= 3:
                        say(
                            f"  {event.op.name.lower():6} {event.label} {event.entity_id}"
                            " -> reaction"
                        )
            await source.stop()
            # Let the reaction's thread take what is queued, then stop it.
            await reaction.flush(timeout=30)
            await reaction.stop()
        elapsed = time.perf_counter() - started
        recorded = store.get("demo-reaction", "result_count")
        recorded_bytes = store.get("demo-reaction", "result_bytes")
        count = int(recorded) if recorded is not None else -1
        logs = sum(
            len(callbacks.log_registry.get(i, c)) for i, c in callbacks.log_registry.components()
        )
        say(f"events by op: {dict(ops)}")
        say(
            "lifecycle: "
            f"{[e.status.name for e in callbacks.source_event_history.get('demo-source')]}"
        )
        say(f"plugin log messages: {logs}")
        print(
            f"demo: {sum(ops.values())} events from the source plugin, {sent} query results "
            f"({sent_bytes} bytes) sent, {count} recorded by the reaction plugin "
            f"({int(recorded_bytes or b'-1')} bytes) in {elapsed:.2f}s"
        )
        store.close()
        source_plugin.close()
        reaction_plugin.close()
        ok = count == sent and int(recorded_bytes or b"-1") == sent_bytes and sent == events
        if not ok:
            print(
                "demo: MISMATCH between what was sent and what the reaction recorded",
                file=sys.stderr,
            )
        return 0 if ok else 1


def run_demo(events: int = 1000, plugin_dir: Path | None = None, quiet: bool = False) -> int:
    def say(text: str) -> None:
        if not quiet:
            print(text)

    if plugin_dir is None:
        builder = _builder()
        compiler = _compiler_words()
        cache = demo_cache_dir(builder, compiler)
        # The directory is keyed by the sources' content: what is there fits.
        built = {n: cache / builder.output_name(n) for n in DEMO_FIXTURES}
        if all(path.is_file() for path in built.values()):
            say(f"using the demo plugins built before in {cache}")
        else:
            say(f"building the demo plugins with {compiler[0]} into {cache} ...")
            built = build_demo_plugins(cache)
        _point_latest(cache)
        source_lib, reaction_lib = built["source"], built["reaction"]
    else:
        source_lib = _find(plugin_dir, "libdrasi_source_fixture")
        reaction_lib = _find(plugin_dir, "libdrasi_reaction_fixture")
    return anyio.run(_pipeline, source_lib, reaction_lib, events, say)
