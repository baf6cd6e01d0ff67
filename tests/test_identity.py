"""The identity-provider bridge, exercised through the real C vtable.

``get_credentials_fn``, ``clone_fn`` and ``drop_fn`` are called through the
function pointers of the host-built ``IdentityProviderVtable``; credential
strings are read and freed as a plugin must.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from bridges_helpers import build_services_plugin, run_services_plugin, take_credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from drasi_host._abi import ffi
from drasi_host._callbacks import handles
from drasi_host.bridges.identity import (
    IdentityHandle,
    IdentityProviderVtableBuilder,
    StaticIdentityProvider,
)
from drasi_host.bridges.state_store import MemoryStateStore
from drasi_host.models import CredentialKind, Credentials

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def get(vt: Any, state: Any = None) -> tuple[int, str | None, int, list[str | None]]:
    return take_credentials(vt.get_credentials_fn(vt.state if state is None else state))


@pytest.fixture
def static_handle() -> Iterator[IdentityHandle]:
    handle = IdentityProviderVtableBuilder.build(
        StaticIdentityProvider(Credentials.username_password("alice", "s3cret"))
    )
    yield handle
    handle.close()


@pytest.mark.parametrize(
    ("credentials", "kind", "fields"),
    [
        (
            Credentials.username_password("alice", "pässword"),
            CredentialKind.USERNAME_PASSWORD,
            ["alice", "pässword", None],
        ),
        (
            Credentials.token("svc", "tok.en.value"),
            CredentialKind.TOKEN,
            ["svc", "tok.en.value", None],
        ),
        (Credentials.certificate(CERT, KEY), CredentialKind.CERTIFICATE, [CERT, KEY, None]),
        (
            Credentials.certificate(CERT, KEY, username="bob"),
            CredentialKind.CERTIFICATE,
            [CERT, KEY, "bob"],
        ),
        (Credentials.username_password("", ""), CredentialKind.USERNAME_PASSWORD, ["", "", None]),
    ],
)
def test_credentials_by_kind(
    credentials: Credentials, kind: CredentialKind, fields: list[str | None]
) -> None:
    with IdentityProviderVtableBuilder.build(StaticIdentityProvider(credentials)) as handle:
        assert get(handle.vtable) == (0, None, int(kind), fields)


@settings(max_examples=30, deadline=None)
@given(user=st.text(max_size=30), secret=st.text(max_size=200))
def test_arbitrary_text_round_trips(user: str, secret: str) -> None:
    creds = Credentials.token(user, secret)
    with IdentityProviderVtableBuilder.build(StaticIdentityProvider(creds)) as handle:
        code, _, kind, fields = get(handle.vtable)
    assert code == 0 and kind == CredentialKind.TOKEN
    # NUL-terminated strings cannot carry NUL: the host writes it as the two characters \0
    assert fields == [user.replace("\0", "\\0"), secret.replace("\0", "\\0"), None]


def test_each_call_returns_fresh_heap_strings(static_handle: IdentityHandle) -> None:
    vt = static_handle.vtable
    first = vt.get_credentials_fn(vt.state)
    second = vt.get_credentials_fn(vt.state)
    assert first.credentials.field1 != second.credentials.field1
    assert take_credentials(first) == take_credentials(second)


def test_provider_error_has_message_and_null_strings() -> None:
    class Failing:
        def get_credentials(self) -> Credentials:
            raise PermissionError("vault sealed")

    with IdentityProviderVtableBuilder.build(Failing()) as handle:
        assert get(handle.vtable) == (1, "PermissionError: vault sealed", 0, [None] * 3)


def test_wrong_return_type_is_an_error() -> None:
    class Wrong:
        def get_credentials(self) -> Any:
            return ("alice", "pw")

    with IdentityProviderVtableBuilder.build(Wrong()) as handle:
        code, message, _, fields = get(handle.vtable)
    assert code == 1 and message is not None and "expected Credentials" in message
    assert fields == [None] * 3


def test_provider_is_asked_every_time() -> None:
    class Rotating:
        def __init__(self) -> None:
            self.n = 0

        def get_credentials(self) -> Credentials:
            self.n += 1
            return Credentials.token("svc", f"token-{self.n}")

    with IdentityProviderVtableBuilder.build(Rotating()) as handle:
        assert get(handle.vtable)[3][1] == "token-1"
        assert get(handle.vtable)[3][1] == "token-2"


def test_static_provider_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="needs Credentials"):
        StaticIdentityProvider(("user", "pw"))  # type: ignore[arg-type]
    provider = StaticIdentityProvider(Credentials.token("u", "hidden-token"))
    assert provider.get_credentials() == Credentials.token("u", "hidden-token")
    assert "hidden-token" not in repr(provider)


def test_not_a_provider_is_refused() -> None:
    with pytest.raises(TypeError, match="no method get_credentials"):
        IdentityProviderVtableBuilder.build(object())  # type: ignore[arg-type]


# ---- clone and drop -----------------------------------------------------------


def test_clone_is_an_independent_state(static_handle: IdentityHandle) -> None:
    vt = static_handle.vtable
    clone = vt.clone_fn(vt.state)
    assert clone != ffi.NULL and clone != vt.state
    assert static_handle.live_clones == 1 and static_handle.clones_made == 1
    assert get(vt, clone)[3] == ["alice", "s3cret", None]
    clone2 = vt.clone_fn(clone)  # a clone of a clone shares the same provider
    assert clone2 not in (ffi.NULL, clone, vt.state)
    assert get(vt, clone2)[0] == 0
    assert static_handle.live_clones == 2

    vt.drop_fn(clone)
    assert static_handle.live_clones == 1
    assert get(vt, clone) == (1, "identity provider is closed", 0, [None] * 3)
    assert vt.clone_fn(clone) == ffi.NULL
    vt.drop_fn(clone)  # a second drop of the same clone is ignored
    assert static_handle.drop_calls == 0, "dropping clones does not drop the original"
    assert get(vt)[0] == 0 and get(vt, clone2)[0] == 0

    vt.drop_fn(vt.state)  # the original's drop is independent of the clones
    assert static_handle.dropped and not static_handle.closed
    assert get(vt, clone2)[0] == 0
    vt.drop_fn(clone2)
    assert static_handle.live_clones == 0


def test_drop_of_the_original_twice_is_harmless(static_handle: IdentityHandle) -> None:
    vt = static_handle.vtable
    vt.drop_fn(vt.state)
    vt.drop_fn(vt.state)
    assert static_handle.drop_calls == 2
    # host-owned until close: still answered
    assert get(vt)[0] == 0


def test_close_releases_original_and_undropped_clones() -> None:
    handle = IdentityProviderVtableBuilder.build(
        StaticIdentityProvider(Credentials.token("u", "t"))
    )
    vt = ffi.new("IdentityProviderVtable *", handle.vtable[0])  # the plugin's copy
    clones = [vt.clone_fn(vt.state) for _ in range(3)]
    vt.drop_fn(clones[0])
    keys = [int(ffi.cast("uintptr_t", c)) for c in clones]
    assert [k in handles for k in keys] == [False, True, True]
    handle.close()
    handle.close()
    assert handle.closed and handle.key not in handles
    assert not any(k in handles for k in keys)
    for state in [vt.state, *clones]:
        assert get(vt, state) == (1, "identity provider is closed", 0, [None] * 3)
    assert vt.clone_fn(vt.state) == ffi.NULL
    for state in [vt.state, *clones]:
        vt.drop_fn(state)  # late drops are harmless


def test_clones_from_many_threads(static_handle: IdentityHandle) -> None:
    vt = static_handle.vtable
    failures: list[Any] = []

    def worker() -> None:
        for _ in range(50):
            c = vt.clone_fn(vt.state)
            result = get(vt, c)
            if result[0] != 0:
                failures.append(result)
            vt.drop_fn(c)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert static_handle.clones_made == 200 and static_handle.live_clones == 0


def test_collected_handle_releases_everything() -> None:
    handle = IdentityProviderVtableBuilder.build(
        StaticIdentityProvider(Credentials.token("u", "t"))
    )
    copy = ffi.new("IdentityProviderVtable *", handle.vtable[0])
    clone = copy.clone_fn(copy.state)
    del handle
    gc.collect()
    assert get(copy)[0] == 1 and get(copy, clone)[0] == 1


# ---- coroutine providers --------------------------------------------------------


class AsyncProvider:
    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.fail = False

    async def get_credentials(self) -> Credentials:
        self.threads.add(threading.get_ident())
        await anyio.sleep(0)
        if self.fail:
            raise LookupError("no such secret")
        return Credentials.certificate(CERT, KEY, username="async")


@pytest.mark.anyio
async def test_async_provider_runs_on_the_loop() -> None:
    provider = AsyncProvider()
    with IdentityProviderVtableBuilder.build(provider) as handle:
        vt = handle.vtable

        def plugin_thread() -> list[Any]:
            clone = vt.clone_fn(vt.state)
            out = [get(vt), get(vt, clone)]
            vt.drop_fn(clone)
            provider.fail = True
            out.append(get(vt))
            return out

        results = await anyio.to_thread.run_sync(plugin_thread)
        on_loop = get(vt)
    assert results == [
        (0, None, CredentialKind.CERTIFICATE, [CERT, KEY, "async"]),
        (0, None, CredentialKind.CERTIFICATE, [CERT, KEY, "async"]),
        (1, "LookupError: no such secret", 0, [None] * 3),
    ]
    assert provider.threads == {threading.get_ident()}
    assert on_loop[0] == 1 and on_loop[1] is not None and "event loop thread" in on_loop[1]


def test_async_provider_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        IdentityProviderVtableBuilder.build(AsyncProvider())


# ---- a real plugin thread: the "services" fixture plugin -------------------------


@pytest.fixture(scope="module")
def services_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_services_plugin(tmp_path_factory.mktemp("services"))


@pytest.mark.anyio
async def test_services_plugin_reads_certificate_credentials(services_lib: Path) -> None:
    identity = StaticIdentityProvider(Credentials.certificate(CERT, KEY, username="cn=svc"))
    report = await run_services_plugin(services_lib, "id-1", MemoryStateStore(), identity)
    assert report["identity"] == {
        "kind": int(CredentialKind.CERTIFICATE),
        "f1": CERT,
        "f2": KEY,
        "f3": "cn=svc",
        "clone_kind": int(CredentialKind.CERTIFICATE),
    }
    assert report["errors"] == []


@pytest.mark.anyio
async def test_services_plugin_with_a_coroutine_identity_provider(services_lib: Path) -> None:
    provider = AsyncProvider()
    report = await run_services_plugin(services_lib, "id-2", MemoryStateStore(), provider)
    assert report["identity"]["f3"] == "async" and report["identity"]["clone_kind"] == 2
    assert provider.threads == {threading.get_ident()}
    provider.fail = True
    report = await run_services_plugin(services_lib, "id-3", MemoryStateStore(), provider)
    assert report["identity"] == {
        "kind": None,
        "error": "LookupError: no such secret",
        "clone_kind": None,
    }
    assert report["errors"] == [
        "get_credentials: LookupError: no such secret (code 1)",
        "get_credentials (clone): LookupError: no such secret (code 1)",
    ]
