"""The host services of the FFI 0.13 generation, against the real C fixture
plugins of ``plugins_fixture/v013/``: the log-level pushdown, the config
resolver, identity providers and secret stores made by plugins, the host-built
0.13 identity vtable (and a plugin's own one handed on through ``clone_fn``)
and the snapshot fetcher.  The fixtures' test entry points
(``hooks013.h``) call the host's function pointers from their own threads,
as plugin code does."""

from __future__ import annotations

import gc
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import cffi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drasi_host import (
    CallbackContext,
    ClosedError,
    ConfigResolver,
    CredentialKind,
    Credentials,
    IdentityProviderProxy,
    LogLevel,
    PluginCallError,
    ReactionRuntimeContext,
    SecretStoreProxy,
    SnapshotFetcher,
    StaticIdentityProvider,
    _abi013,
)
from drasi_host._callbacks import handles
from drasi_host.bridges.identity013 import build_identity_vtable013, read_context
from drasi_host.bridges.snapshot import build_snapshot_fetcher013
from drasi_host.loader import PLUGIN_LOGGER, load_plugin

ROOT = Path(__file__).resolve().parents[1]
V013 = ROOT / "plugins_fixture" / "v013"

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def _cdef(name: str) -> str:
    return "\n".join(
        line for line in (V013 / name).read_text().splitlines() if not line.lstrip().startswith("#")
    )


_hooks_ffi = cffi.FFI()
_hooks_ffi.cdef(_cdef("stats013.h"))
_hooks_ffi.cdef(_cdef("hooks013.h"))


class Fixture:
    """A private copy of a 0.13 fixture library: its counters and test hooks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib: Any = _hooks_ffi.dlopen(str(path))

    def stats(self) -> dict[str, int]:
        out = _hooks_ffi.new("DrasiFixture013Stats *")
        self.lib.drasi_fixture013_stats(out)
        return {
            k: int(getattr(out, k)) for k, _ in _hooks_ffi.typeof("DrasiFixture013Stats").fields
        }

    def resolve(self, request: str | bytes, threads: int = 1) -> tuple[int, str]:
        data = request.encode() if isinstance(request, str) else request
        out = _hooks_ffi.new("char[]", 4096)
        ok = self.lib.drasi_fixture013_resolve(data, len(data), threads, out, 4096)
        return int(ok), _hooks_ffi.string(out).decode()

    def adopt_identity(self, vtable: Any) -> Any:
        return self.lib.drasi_fixture013_identity_adopt(_abi013.ffi.cast("void *", vtable))

    def call_identity(
        self, holder: Any, context: bytes | None, threads: int = 1, calls: int = 1, clones: int = 0
    ) -> tuple[int, str]:
        out = _hooks_ffi.new("char[]", 8192)
        ctx = _hooks_ffi.NULL if context is None else _hooks_ffi.new("char[]", context)
        n = 0 if context is None else len(context)
        ok = self.lib.drasi_fixture013_identity_call(
            holder, ctx, n, threads, calls, clones, out, 8192
        )
        return int(ok), _hooks_ffi.string(out).decode()

    def snapshot(
        self, vtable: Any, query_id: str, threads: int = 1, stop_after: int = -1
    ) -> tuple[int, str]:
        qid = query_id.encode()
        cap = 1 << 20
        out = _hooks_ffi.new("char[]", cap)
        rows = self.lib.drasi_fixture013_snapshot(
            _abi013.ffi.cast("void *", vtable), qid, len(qid), threads, stop_after, out, cap
        )
        return int(rows), _hooks_ffi.string(out).decode()

    def drop_snapshot(self, vtable: Any) -> None:
        self.lib.drasi_fixture013_snapshot_drop(_abi013.ffi.cast("void *", vtable))


@pytest.fixture(scope="module")
def built013(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("services013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(
        out, only=["v013_services", "v013_all"]
    )
    return built


_copies = 0


def fresh(built013: dict[str, Path], tmp_path: Path, name: str = "v013_services") -> Fixture:
    """A private copy of fixture ``name`` (its own library instance and counters)."""
    global _copies
    _copies += 1
    directory = tmp_path / f"copy{_copies}"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / built013[name].name
    shutil.copy2(built013[name], target)
    return Fixture(target)


@pytest.fixture
def services(built013: dict[str, Path], tmp_path: Path) -> Fixture:
    return fresh(built013, tmp_path)


@pytest.fixture
def component(built013: dict[str, Path], tmp_path: Path) -> Fixture:
    """Another library, standing in for a 0.13 component that is given services."""
    return fresh(built013, tmp_path, "v013_all")


# ---- log level ---------------------------------------------------------------


def _levels_seen(callbacks: CallbackContext, component: str) -> list[LogLevel]:
    return [m.level for m in callbacks.log_registry.get(callbacks.instance_id, component)]


def test_set_log_level_filters_inside_the_plugin(services: Fixture) -> None:
    callbacks = CallbackContext("logs")
    with load_plugin(services.path, callbacks) as plugin:
        plugin.set_log_level(logging.WARNING)
        assert services.stats()["log_level"] == 2 and plugin.log_filter == 2
        services.lib.drasi_fixture013_log_levels(b"lv1")
        assert _levels_seen(callbacks, "lv1") == [LogLevel.ERROR, LogLevel.WARN]
        assert services.stats()["logs_filtered"] == 3

        plugin.set_log_level(LogLevel.TRACE)
        services.lib.drasi_fixture013_log_levels(b"lv2")
        assert _levels_seen(callbacks, "lv2") == list(LogLevel)

        plugin.set_log_level(LogLevel.INFO)
        services.lib.drasi_fixture013_log_levels(b"lv3")
        assert _levels_seen(callbacks, "lv3") == [LogLevel.ERROR, LogLevel.WARN, LogLevel.INFO]

        for level, expected in [
            (logging.DEBUG, 4),
            (5, 5),  # below DEBUG: Trace
            (-3, 5),
            (logging.CRITICAL, 1),
            (10_000, 1),
            (LogLevel.ERROR, 1),
            (LogLevel.DEBUG, 4),
        ]:
            plugin.set_log_level(level)
            assert services.stats()["log_level"] == expected, level
        for bad in ("INFO", True, 2.0, None):
            with pytest.raises(TypeError):
                plugin.set_log_level(bad)  # type: ignore[arg-type]
        assert services.stats()["log_level"] == 4  # unchanged by refused calls
    with pytest.raises(ClosedError):
        plugin.set_log_level(logging.INFO)


def test_set_log_level_of_a_04_plugin_does_nothing(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["source"], CallbackContext("t")) as plugin:
        assert plugin.abi_version == "0.4"
        plugin.set_log_level(logging.ERROR)
        assert plugin.log_filter is None
        with pytest.raises(TypeError):
            plugin.set_log_level("debug")  # type: ignore[arg-type]


def test_log_level_at_load_follows_the_plugin_logger(services: Fixture) -> None:
    logger = logging.getLogger(PLUGIN_LOGGER)
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with load_plugin(services.path, CallbackContext("t")) as plugin:
            assert plugin.log_filter == 1 == services.stats()["log_level"]
    finally:
        logger.setLevel(saved)


# ---- config resolver -----------------------------------------------------------


class SyncResolver:
    def __init__(self) -> None:
        self.names: list[str] = []

    def resolve_secret(self, name: str) -> str:
        self.names.append(name)
        return f"sync:{name}"


class AsyncResolver:
    async def resolve_secret(self, name: str) -> str:
        await anyio.sleep(0)
        return f"async:{name}"


class RaisingResolver:
    def resolve_secret(self, name: str) -> str:
        raise RuntimeError(f"vault sealed for {name}")


class WrongResolver:
    def __init__(self, value: Any) -> None:
        self.value = value

    def resolve_secret(self, name: str) -> Any:
        return self.value


def secret_request(name: str) -> str:
    return json.dumps({"kind": "Secret", "name": name}, ensure_ascii=False)


def test_sync_resolver_from_plugin_threads(services: Fixture) -> None:
    resolver = SyncResolver()
    with load_plugin(services.path, CallbackContext("t", config_resolver=resolver)):
        ok, out = services.resolve(secret_request("db-password"), threads=8)
        assert (ok, out) == (8, "ok:sync:db-password")
        assert resolver.names == ["db-password"] * 8
        assert services.stats()["resolver_failures"] == 0


@pytest.mark.anyio
async def test_async_resolver_runs_on_the_event_loop(services: Fixture) -> None:
    async with load_plugin(services.path, CallbackContext("t", config_resolver=AsyncResolver())):
        ok, out = await anyio.to_thread.run_sync(services.resolve, secret_request("tök"), 4)
        assert (ok, out) == (4, "ok:async:tök")


@pytest.mark.parametrize(
    ("resolver", "request_text", "expected"),
    [
        (None, secret_request("a"), "no config resolver is configured"),
        (RaisingResolver(), secret_request("a"), "RuntimeError: vault sealed for a"),
        (WrongResolver(42), secret_request("a"), "returned int, not str"),
        (WrongResolver("nul\x00inside"), secret_request("a"), "NUL"),
        (object(), secret_request("a"), "has no resolve_secret"),
        (SyncResolver(), "{not json", "not valid JSON"),
        (SyncResolver(), '["Secret"]', "not a JSON object"),
        (SyncResolver(), '{"kind":"EnvironmentVariable","name":"A"}', "only Secret"),
        (SyncResolver(), '{"kind":"Secret"}', "without a string name"),
    ],
)
def test_resolver_failures_reach_the_plugin_as_text(
    services: Fixture, resolver: Any, request_text: str, expected: str
) -> None:
    with load_plugin(services.path, CallbackContext("t", config_resolver=resolver)):
        ok, out = services.resolve(request_text, threads=2)
        assert ok == 0 and out.startswith("err:") and expected in out, out
        assert services.stats()["resolver_failures"] == 2


def test_the_last_resolver_set_applies_to_the_library(services: Fixture) -> None:
    first, second = SyncResolver(), SyncResolver()
    one = load_plugin(services.path, CallbackContext("one", config_resolver=first))
    two = load_plugin(services.path, CallbackContext("two", config_resolver=second))
    try:
        assert services.resolve(secret_request("k"))[0] == 1
        assert (first.names, second.names) == ([], ["k"])
        # the resolver is read at each request: replacing it takes effect at once
        two_ctx = CallbackContext("two-b", config_resolver=None)
        two_ctx.config_resolver = first
        three = load_plugin(services.path, two_ctx)
        assert services.resolve(secret_request("m")) == (1, "ok:sync:m")
        three.close()
        # the library's resolver is now a released route: a clear error, no crash
        ok, out = services.resolve(secret_request("z"))
        assert ok == 0 and "released" in out
    finally:
        one.close()
        two.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
    )
)
def test_secret_names_round_trip(services: Fixture, name: str) -> None:
    resolver = SyncResolver()
    with load_plugin(services.path, CallbackContext("t", config_resolver=resolver)):
        assert services.resolve(secret_request(name)) == (1, f"ok:sync:{name}")


@pytest.mark.anyio
async def test_plugin_resolves_its_config_secret_when_created(services: Fixture) -> None:
    callbacks = CallbackContext("t", config_resolver=SyncResolver())
    async with load_plugin(services.path, callbacks) as plugin:
        factory = plugin.identity_provider_plugins[0]
        async with await factory.create_identity_provider({"token_secret": "api"}) as provider:
            creds = await provider.get_credentials()
            assert creds.token == "sync:api|"
        callbacks.config_resolver = None
        with pytest.raises(PluginCallError) as info:
            await factory.create_identity_provider({"token_secret": "api"})
        assert info.value.plugin == services.path.name
        assert "no config resolver is configured" in (info.value.plugin_message or "")
        assert "secret not resolved" in str(info.value)
    assert services.stats()["identity_states_alive"] == 0


@pytest.mark.anyio
async def test_a_secret_store_is_a_config_resolver(services: Fixture, component: Fixture) -> None:
    store_ctx = CallbackContext("stores")
    async with load_plugin(services.path, store_ctx) as plugin:
        store = await plugin.secret_store_plugins[0].create_secret_store({"prefix": "vault/"})
        resolver: ConfigResolver = store
        assert await resolver.resolve_secret("db") == "vault/db"  # type: ignore[misc]
        async with load_plugin(component.path, CallbackContext("c", config_resolver=store)):
            # answered on the plugin's own thread, without the event loop
            ok, out = component.resolve(secret_request("db"), threads=3)
            assert (ok, out) == (3, "ok:vault/db")
            ok, out = component.resolve(secret_request("missing"))
            assert ok == 0 and "no secret named missing" in out
            await store.aclose()
            ok, out = component.resolve(secret_request("db"))
            assert ok == 0 and "closed" in out
    assert services.stats()["objects_dropped"] == 1


# ---- identity providers and secret stores made by plugins ---------------------


@pytest.mark.anyio
async def test_identity_provider_instances(services: Fixture) -> None:
    async with load_plugin(services.path, CallbackContext("t")) as plugin:
        factory = plugin.identity_provider_plugins[0]
        provider = await factory.create_identity_provider({"token": "abc"})
        assert isinstance(provider, IdentityProviderProxy) and provider.kind == factory.kind
        assert services.stats()["identity_states_alive"] == 1
        creds = await provider.get_credentials()
        assert creds == Credentials.token("fixture-user", "abc|")
        creds = await provider.get_credentials(context={"host": "db.example", "ü": "ß"})
        assert creds.kind is CredentialKind.TOKEN
        token = creds.token
        assert token is not None and token.startswith("abc|")
        assert json.loads(token[4:]) == {"host": "db.example", "ü": "ß"}
        with pytest.raises(TypeError):
            await provider.get_credentials(context={"n": 1})  # type: ignore[dict-item]

        refusing = await factory.create_identity_provider({"token": "fail"})
        with pytest.raises(PluginCallError) as info:
            await refusing.get_credentials()
        assert info.value.plugin_message == "fixture013-identity: credentials refused"
        assert info.value.plugin == services.path.name

        with pytest.raises(PluginCallError) as info:
            await factory.create_identity_provider({"mode": "nullptr"})
        assert info.value.plugin_message == "identity provider refused: mode nullptr"

        await provider.aclose()
        await provider.aclose()
        assert provider.released
        assert services.stats()["identity_states_alive"] == 1
        with pytest.raises(ClosedError):
            await provider.get_credentials()
        await refusing.aclose()
    assert services.stats()["identity_states_alive"] == 0


@pytest.mark.anyio
async def test_secret_store_instances(services: Fixture) -> None:
    async with load_plugin(services.path, CallbackContext("t")) as plugin:
        factory = plugin.secret_store_plugins[0]
        async with await factory.create_secret_store({"prefix": "p/"}) as store:
            assert isinstance(store, SecretStoreProxy)
            assert await store.get_secret("a") == "p/a"
            assert await store.get_secret("ünï") == "p/ünï"
            assert await store.get_secret("empty") == ""
            with pytest.raises(PluginCallError) as info:
                await store.get_secret("missing")
            assert info.value.plugin_message == "fixture013-secrets: no secret named missing"
            with pytest.raises(TypeError):
                await store.get_secret(3)  # type: ignore[arg-type]
        with pytest.raises(ClosedError):
            await store.get_secret("a")
        with pytest.raises(PluginCallError) as info:
            await factory.create_secret_store({"mode": "nullptr"})
        assert "create_secret_store refused" in str(info.value)
        stats = services.stats()
        assert (stats["objects_created"], stats["objects_dropped"]) == (1, 1)
        assert (stats["secrets_served"], stats["secret_errors"]) == (3, 1)


@pytest.mark.anyio
async def test_forgotten_instances_are_released_with_a_warning(services: Fixture) -> None:
    async with load_plugin(services.path, CallbackContext("t")) as plugin:
        with pytest.warns(ResourceWarning):
            await plugin.secret_store_plugins[0].create_secret_store({})
            await plugin.identity_provider_plugins[0].create_identity_provider({})
            gc.collect()
        for _ in range(200):
            stats = services.stats()
            if stats["objects_dropped"] == 1 and stats["identity_states_alive"] == 0:
                break
            await anyio.sleep(0.01)
        assert services.stats()["objects_dropped"] == 1
        assert services.stats()["identity_states_alive"] == 0


# ---- the 0.13 identity vtable given to components -----------------------------


class ContextProvider:
    def __init__(self) -> None:
        self.contexts: list[dict[str, str]] = []

    def get_credentials(self, context: dict[str, str]) -> Credentials:
        self.contexts.append(context)
        return Credentials.username_password("u", json.dumps(context, sort_keys=True))


class LegacyProvider:
    calls = 0

    def get_credentials(self) -> Credentials:
        LegacyProvider.calls += 1
        return Credentials.certificate("CERT", "KEY", username="ü")


class AsyncContextProvider:
    async def get_credentials(self, *, context: dict[str, str]) -> Credentials:
        await anyio.sleep(0)
        return Credentials.token("async", context.get("host", "-"))


def test_host_built_identity_vtable_from_plugin_threads(component: Fixture) -> None:
    provider = ContextProvider()
    handle = build_identity_vtable013(provider)
    assert not handle.plugin_owned and handle.live_states == 1
    holder = component.adopt_identity(handle.vtable)
    handle.handed_over()
    ok, out = component.call_identity(holder, b'{"host":"db"}', threads=4, calls=3, clones=2)
    assert ok == 4 * 3 * 3
    assert out == '0|u|{"host": "db"}|'
    assert provider.contexts == [{"host": "db"}] * 36
    assert handle.clones_made == 8 and handle.drop_calls == 8 and handle.live_states == 1
    component.lib.drasi_fixture013_identity_release(holder)
    assert handle.drop_calls == 9 and handle.live_states == 0
    handle.close()
    assert component.stats()["foreign_identity_dropped"] == 9


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (None, {}),
        (b"", {}),
        (b"{bad json", {}),
        (b'["a"]', {}),
        (b'{"a":1}', {}),
        (b"\xff\xfe", {}),
    ],
)
def test_bad_credential_contexts_are_empty(
    component: Fixture, context: bytes | None, expected: dict[str, str]
) -> None:
    provider = ContextProvider()
    with build_identity_vtable013(provider) as handle:
        holder = component.adopt_identity(handle.vtable)
        assert component.call_identity(holder, context)[0] == 1
        assert provider.contexts == [expected]
        component.lib.drasi_fixture013_identity_release(holder)


def test_providers_without_context_and_static_ones(component: Fixture) -> None:
    before = LegacyProvider.calls
    with build_identity_vtable013(LegacyProvider()) as handle:
        holder = component.adopt_identity(handle.vtable)
        assert component.call_identity(holder, b'{"a":"b"}', calls=2) == (2, "2|CERT|KEY|ü")
        component.lib.drasi_fixture013_identity_release(holder)
    assert LegacyProvider.calls == before + 2
    static = StaticIdentityProvider(Credentials.token("s", "t"))
    assert static.get_credentials(context={"x": "y"}) == static.get_credentials()
    with build_identity_vtable013(static) as handle:
        holder = component.adopt_identity(handle.vtable)
        assert component.call_identity(holder, b'{"x":"y"}') == (1, "1|s|t|")
        component.lib.drasi_fixture013_identity_release(holder)


@pytest.mark.anyio
async def test_async_identity_provider_with_context(component: Fixture) -> None:
    handle = build_identity_vtable013(AsyncContextProvider())
    holder = component.adopt_identity(handle.vtable)
    ok, out = await anyio.to_thread.run_sync(
        component.call_identity, holder, b'{"host":"h1"}', 3, 2, 1
    )
    assert (ok, out) == (12, "1|async|h1|")
    component.lib.drasi_fixture013_identity_release(holder)
    handle.close()


def test_identity_failures_and_late_calls(component: Fixture) -> None:
    class Raising:
        def get_credentials(self) -> Credentials:
            raise ValueError("no token today")

    class Wrong:
        def get_credentials(self) -> Any:
            return "password"

    for provider, text in [(Raising(), "ValueError: no token today"), (Wrong(), "TypeError")]:
        with build_identity_vtable013(provider) as handle:
            holder = component.adopt_identity(handle.vtable)
            ok, out = component.call_identity(holder, None, threads=2)
            assert ok == 0 and out.startswith("err:") and text in out
            component.lib.drasi_fixture013_identity_release(holder)
    with pytest.raises(TypeError):
        build_identity_vtable013(object())

    # closed before the plugin let go: calls get errors, clones fail, drops are ignored
    handle = build_identity_vtable013(ContextProvider())
    holder = component.adopt_identity(handle.vtable)
    handle.handed_over()
    handle.close()
    handle.close()
    assert handle.live_states == 0
    ok, out = component.call_identity(holder, None)
    assert ok == 0 and "identity provider is closed" in out
    assert component.call_identity(holder, None, clones=1)[0] == -1
    late = handles.late_calls
    component.lib.drasi_fixture013_identity_release(holder)
    assert handles.late_calls > late and handle.drop_calls == 0


@pytest.mark.anyio
async def test_a_plugin_identity_provider_is_handed_on_through_clone_fn(
    services: Fixture, component: Fixture
) -> None:
    async with load_plugin(services.path, CallbackContext("t")) as plugin:
        factory = plugin.identity_provider_plugins[0]
        async with await factory.create_identity_provider({"token": "tk"}) as provider:
            handle = build_identity_vtable013(provider)
            assert handle.plugin_owned
            assert services.stats()["identity_states_alive"] == 2  # the proxy's and the clone
            holder = component.adopt_identity(handle.vtable)
            handle.handed_over()
            ok, out = component.call_identity(holder, b'{"h":"x"}', threads=3, clones=1)
            assert (ok, out) == (6, '1|fixture-user|tk|{"h":"x"}|')
            assert services.stats()["identity_states_alive"] == 2
            component.lib.drasi_fixture013_identity_release(holder)
            handle.close()
            assert services.stats()["identity_states_alive"] == 1
            # never handed over: close() drops the clone itself
            unused = build_identity_vtable013(provider)
            assert services.stats()["identity_states_alive"] == 2
            unused.close()
            unused.close()
            assert services.stats()["identity_states_alive"] == 1
        with pytest.raises(ClosedError):
            build_identity_vtable013(provider)
    assert services.stats()["identity_states_alive"] == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    context=st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
        max_size=6,
    )
)
def test_credential_contexts_round_trip(component: Fixture, context: dict[str, str]) -> None:
    provider = ContextProvider()
    data = json.dumps(context, ensure_ascii=False).encode()
    assert read_context(data) == context
    with build_identity_vtable013(provider) as handle:
        holder = component.adopt_identity(handle.vtable)
        assert component.call_identity(holder, data)[0] == 1
        component.lib.drasi_fixture013_identity_release(holder)
    assert provider.contexts == [context]


# ---- snapshot fetcher -------------------------------------------------------------


class Rows:
    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows
        self.asked: list[str] = []

    def fetch_snapshot(self, query_id: str) -> list[dict[str, Any]]:
        self.asked.append(query_id)
        if query_id not in self.rows:
            raise KeyError(f"unknown query {query_id}")
        return self.rows[query_id]


def parse_rows(text: str) -> list[Any]:
    return [json.loads(line) for line in text.split("\n") if line]


def test_snapshot_rows_from_plugin_threads(component: Fixture) -> None:
    rows = [{"id": 1, "name": "Ada"}, {"id": 2, "tags": ["x", None], "nested": {"ok": True}}]
    fetcher = Rows({"q1": rows, "empty": []})
    handle = build_snapshot_fetcher013(fetcher)
    n, out = component.snapshot(handle.vtable, "q1", threads=4)
    assert n == 8
    assert parse_rows(out) == [{"k": 0, "v": r} for r in rows]
    assert component.snapshot(handle.vtable, "empty") == (0, "")
    # stopped early: the iterator is dropped before exhaustion (no leak under valgrind)
    n, out = component.snapshot(handle.vtable, "q1", stop_after=1)
    assert n == 1 and parse_rows(out) == [{"k": 0, "v": rows[0]}]
    n, out = component.snapshot(handle.vtable, "nope")
    assert n == 0 and out.startswith("err:snapshot fetch failed: KeyError")
    assert handle.fetches == 7 and handle.rows_served == 10
    component.drop_snapshot(handle.vtable)
    assert handle.drop_calls == 1 and handle.closed
    handle.close()
    assert fetcher.asked.count("q1") == 5


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [{"a": 1}, ["not", "a", "mapping"]],
            "snapshot row 1 of query 'q': a snapshot row is a mapping",
        ),
        ([{"a": float("nan")}], "snapshot row 0"),
        ([{"a": object()}], "not JSON serializable"),
        ("a string", "not an iterable of rows"),
        (None, "not an iterable of rows"),
    ],
)
def test_snapshot_errors_allocate_no_iterator(component: Fixture, rows: Any, expected: str) -> None:
    class Fetcher:
        def fetch_snapshot(self, query_id: str) -> Any:
            return rows

    with build_snapshot_fetcher013(Fetcher()) as handle:
        n, out = component.snapshot(handle.vtable, "q", threads=2)
        assert n == 0 and out.startswith("err:") and expected in out, out
        component.drop_snapshot(handle.vtable)


def test_snapshot_after_close_and_bad_fetchers(component: Fixture) -> None:
    handle = build_snapshot_fetcher013(Rows({"q": [{"a": 1}]}))
    handle.close()
    n, out = component.snapshot(handle.vtable, "q")
    assert (n, out) == (0, "err:snapshot fetcher is closed")
    component.drop_snapshot(handle.vtable)
    assert handle.drop_calls == 1
    with pytest.raises(TypeError):
        build_snapshot_fetcher013(object())


@pytest.mark.anyio
async def test_async_snapshot_fetchers(component: Fixture) -> None:
    class Coroutine:
        async def fetch_snapshot(self, query_id: str) -> list[dict[str, Any]]:
            await anyio.sleep(0)
            return [{"q": query_id}]

    class Generator:
        async def fetch_snapshot(self, query_id: str) -> AsyncIterator[dict[str, Any]]:
            for i in range(3):
                await anyio.sleep(0)
                yield {"i": i}

    fetcher: SnapshotFetcher
    for fetcher, expected in [
        (Coroutine(), [{"q": "qa"}]),
        (Generator(), [{"i": 0}, {"i": 1}, {"i": 2}]),
    ]:
        handle = build_snapshot_fetcher013(fetcher)
        n, out = await anyio.to_thread.run_sync(component.snapshot, handle.vtable, "qa", 2)
        assert n == 2 * len(expected)
        assert parse_rows(out) == [{"k": 0, "v": r} for r in expected]
        component.drop_snapshot(handle.vtable)
        handle.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
            json_values,
            max_size=5,
        ),
        max_size=6,
    )
)
def test_snapshot_rows_round_trip(component: Fixture, rows: list[dict[str, Any]]) -> None:
    with build_snapshot_fetcher013(Rows({"q": rows})) as handle:
        n, out = component.snapshot(handle.vtable, "q")
        assert n == len(rows)
        assert parse_rows(out) == [{"k": 0, "v": r} for r in rows]
        component.drop_snapshot(handle.vtable)


def test_reaction_runtime_context_keeps_its_old_form() -> None:
    old = ReactionRuntimeContext("i", "r")
    assert old.snapshot_fetcher is None
    fetcher = Rows({})
    ctx = ReactionRuntimeContext("i", "r", None, None, fetcher)
    assert ctx.snapshot_fetcher is fetcher
    assert ReactionRuntimeContext("i", "r", snapshot_fetcher=fetcher) == ctx


@pytest.mark.anyio
async def test_a_plugin_identity_provider_behind_the_04_bridge(services: Fixture) -> None:
    from bridges_helpers import take_credentials

    from drasi_host import IdentityProviderVtableBuilder

    async with load_plugin(services.path, CallbackContext("t")) as plugin:
        factory = plugin.identity_provider_plugins[0]
        async with await factory.create_identity_provider({"token": "v4"}) as provider:
            with IdentityProviderVtableBuilder.build(provider) as handle:
                vt = handle.vtable
                code, message, kind, fields = await anyio.to_thread.run_sync(
                    lambda: take_credentials(vt.get_credentials_fn(vt.state))
                )
                assert (code, message, kind) == (0, None, int(CredentialKind.TOKEN))
                assert fields == ["fixture-user", "v4|", None]
    assert services.stats()["identity_states_alive"] == 0


def test_async_resolver_of_a_plugin_loaded_outside_an_event_loop(services: Fixture) -> None:
    with load_plugin(services.path, CallbackContext("t", config_resolver=AsyncResolver())):
        ok, out = services.resolve(secret_request("a"))
        assert ok == 0 and "coroutine function" in out and "event loop" in out
