"""The registry client's transport: an injected httpx client, retries (which
methods, how long), Retry-After in both forms, and the typed errors."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx
import pytest
from mini_registry import MiniRegistry
from registry_servers import RegistryServer, mini_config

from drasi_host.errors import (
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryTransportError,
)
from drasi_host.registry.distribution import (
    RETRIED_METHODS,
    DistributionClient,
    retry_after_seconds,
    status_error_class,
)
from drasi_host.registry.oci import OciRegistryClient, RegistryConfig

pytestmark = pytest.mark.anyio


def test_retry_after_both_forms() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(" 0 ", now) == 0.0
    in_30s = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(in_30s, now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds(past, now) == 0.0
    for unreadable in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2020"):
        assert retry_after_seconds(unreadable, now) is None


def test_backoff_has_full_jitter_and_honours_retry_after() -> None:
    client = DistributionClient(RegistryConfig(backoff_base=0.5, backoff_max=8.0))
    samples = [client._backoff(3, None) for _ in range(200)]
    assert all(0.0 <= s <= 4.0 for s in samples)
    assert len(set(samples)) > 100  # jittered, not a fixed schedule
    assert max(samples) > 2.0 and min(samples) < 2.0
    asked = httpx.Response(503, headers={"Retry-After": "5"})
    assert all(5.0 <= client._backoff(0, asked) <= 8.0 for _ in range(50))
    date = email.utils.formatdate(time.time() + 6, usegmt=True)
    dated = httpx.Response(429, headers={"Retry-After": date})
    assert all(4.5 <= client._backoff(0, dated) <= 8.0 for _ in range(50))
    too_long = httpx.Response(503, headers={"Retry-After": "3600"})
    assert client._backoff(0, too_long) == 8.0  # capped


def test_status_error_classes() -> None:
    assert status_error_class(404) is RegistryNotFoundError
    assert status_error_class(401) is RegistryAuthError
    assert status_error_class(403) is RegistryAuthError
    assert status_error_class(503) is RegistryTransportError
    assert status_error_class(429) is RegistryTransportError
    assert status_error_class(400) is RegistryError
    assert {"POST", "PUT", "PATCH"}.isdisjoint(RETRIED_METHODS)


async def test_get_is_retried_post_and_put_never(
    mini_registry_factory: Callable[..., MiniRegistry],
) -> None:
    server = mini_registry_factory()
    async with OciRegistryClient(mini_config(server, max_retries=3)) as client:
        server.fail("GET", "/tags/list", 2, 503)
        with pytest.raises(RegistryNotFoundError):
            await client.list_tags("source/retried")  # 2 x 503, then the real 404
        assert server.requests("GET", "/tags/list") == 3

        server.fail("POST", "/blobs/uploads/", 1, 503)
        with pytest.raises(RegistryTransportError, match="HTTP 503") as info:
            await client.push_blob("source/p", b"post once")
        assert info.value.status_code == 503
        assert server.requests("POST", "/blobs/uploads/") == 1

        server.fail("PUT", "/blobs/uploads/", 1, 503)
        with pytest.raises(RegistryTransportError, match="HTTP 503"):
            await client.push_blob("source/p", b"put once")
        assert server.requests("PUT", "/blobs/uploads/") == 1
        # Nothing left over: the same blob goes through on a clean try.
        assert (await client.push_blob("source/p", b"put once")).size == 8


async def test_retries_exhausted_is_a_transport_error(
    mini_registry_factory: Callable[..., MiniRegistry],
) -> None:
    server = mini_registry_factory()
    async with OciRegistryClient(mini_config(server, max_retries=2)) as client:
        server.fail("GET", "/manifests/", 3, 502)
        with pytest.raises(RegistryTransportError, match="HTTP 502") as info:
            await client.get_manifest("source/x:1")
    assert info.value.status_code == 502 and info.value.url and info.value.reference
    assert server.requests("GET", "/manifests/") == 3


async def test_injected_http_client_is_used_and_not_closed(registry: RegistryServer) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        async with OciRegistryClient(registry.config(), http_client=http) as client:
            with pytest.raises(RegistryNotFoundError):
                await client.get_manifest("source/injected:1")
        assert not http.is_closed
        assert any(line.endswith("/manifests/1") for line in seen)
        # still usable by its owner after the registry client closed
        assert (await http.get(f"http://{registry.host}/v2/")).status_code == 200
    own = OciRegistryClient(registry.config())
    await own.aclose()
    assert own._http.is_closed
