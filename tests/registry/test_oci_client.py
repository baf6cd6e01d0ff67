"""OciRegistryClient against a real registry (docker-registry) and the mini
server (bearer tokens, pagination, faults)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from mini_registry import MiniRegistry
from registry_helpers import metadata, push_directory, push_plugin
from registry_servers import RegistryServer, mini_config

from drasi_host.errors import RegistryError, RegistryTransportError
from drasi_host.registry.artifact import (
    ANN_KIND,
    ANN_TYPE,
    OCI_INDEX,
    OCI_MANIFEST,
    PLUGIN_BINARY,
    Descriptor,
    build_index,
    sha256_digest,
)
from drasi_host.registry.oci import OciRegistryClient, RegistryAuth, RegistryConfig
from drasi_host.registry.platform import current_target_triple, triple_to_platform

pytestmark = pytest.mark.anyio
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
TAG = "0.1.0-linux-amd64"


def _blob_path(server: RegistryServer, digest: str) -> Path:
    hex_digest = digest.partition(":")[2]
    return (
        server.root
        / "storage"
        / "docker"
        / "registry"
        / "v2"
        / "blobs"
        / "sha256"
        / hex_digest[:2]
        / hex_digest
        / "data"
    )


@pytest.mark.registry
async def test_push_list_manifest_metadata(registry: RegistryServer, plugin_binary: bytes) -> None:
    async with OciRegistryClient(registry.config()) as client:
        meta = metadata()
        digest = await push_plugin(client, f"source/testsrc:{TAG}", plugin_binary, meta)
        await push_plugin(client, "source/testsrc:0.2.0-linux-arm64", plugin_binary, meta)
        assert sorted(await client.list_tags("source/testsrc")) == [
            "0.1.0-linux-amd64",
            "0.2.0-linux-arm64",
        ]
        manifest = await client.get_manifest(f"source/testsrc:{TAG}")
        assert manifest.digest == digest == sha256_digest(manifest.raw)
        assert manifest.media_type == OCI_MANIFEST
        assert [layer.media_type for layer in manifest.layers()] == [
            PLUGIN_BINARY,
            "application/vnd.drasi.plugin.v1+metadata",
        ]
        assert await client.get_digest(f"source/testsrc:{TAG}") == digest
        annotations = await client.fetch_manifest_annotations(f"source/testsrc:{TAG}")
        assert annotations[ANN_KIND] == "testsrc"
        assert annotations["io.drasi.plugin.sdk-version"] == "0.4.2"
        assert await client.fetch_metadata(f"source/testsrc:{TAG}") == meta
        by_digest = await client.get_manifest(f"source/testsrc@{digest}")
        assert by_digest.raw == manifest.raw
        assert await client.find_manifest("source/testsrc:9.9.9-linux-amd64") is None
        with pytest.raises(RegistryError, match=r"not found \(HTTP 404\)"):
            await client.get_manifest("source/testsrc:9.9.9-linux-amd64")
        with pytest.raises(RegistryError, match="HTTP 404"):
            await client.list_tags("source/does-not-exist")


@pytest.mark.registry
async def test_download_plugin(
    registry: RegistryServer, plugin_binary: bytes, tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    async with OciRegistryClient(registry.config()) as client:
        digest = await push_plugin(client, f"source/testsrc:{TAG}", plugin_binary, metadata())
        result = await client.download_plugin(
            f"source/testsrc:{TAG}",
            tmp_path / "plugins",
            progress=lambda d, t: calls.append((d, t)),
        )
    assert result.path == tmp_path / "plugins" / "libdrasi_source_testsrc.so"
    assert result.digest == digest
    assert result.verification is None
    assert result.size == len(plugin_binary)
    assert result.path.read_bytes() == plugin_binary
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o755
    assert os.listdir(tmp_path / "plugins") == ["libdrasi_source_testsrc.so"]
    assert calls[0] == (0, len(plugin_binary))
    assert calls[-1] == (len(plugin_binary), len(plugin_binary))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.registry
@asyncio_only
async def test_download_by_digest_and_through_index(
    registry: RegistryServer, plugin_binary: bytes, tmp_path: Path
) -> None:
    platform = triple_to_platform(current_target_triple() or "")
    assert platform is not None
    async with OciRegistryClient(registry.config()) as client:
        digest = await push_plugin(client, f"source/testsrc:{TAG}", plugin_binary, metadata())
        result = await client.download_plugin(f"source/testsrc@{digest}", tmp_path / "a")
        assert result.path.read_bytes() == plugin_binary
        size = len((await client.get_manifest(f"source/testsrc@{digest}")).raw)
        entry = Descriptor(
            OCI_MANIFEST,
            digest,
            size,
            platform={"os": platform.os, "architecture": platform.architecture},
        )
        other = Descriptor(
            OCI_MANIFEST, digest, size, platform={"os": "plan9", "architecture": "mips"}
        )
        index_digest = await client.push_manifest(
            "source/testsrc:multi", build_index([other, entry]), OCI_INDEX
        )
        result = await client.download_plugin("source/testsrc:multi", tmp_path / "b")
        assert result.digest == index_digest
        assert result.path.read_bytes() == plugin_binary
        with pytest.raises(RegistryError, match="image index"):
            await client.fetch_manifest_annotations("source/testsrc:multi")
        await client.push_manifest("source/testsrc:foreign", build_index([other]), OCI_INDEX)
        with pytest.raises(RegistryError, match="no manifest for this platform"):
            await client.download_plugin("source/testsrc:foreign", tmp_path / "c")
        wrong = "sha256:" + "0" * 64
        with pytest.raises(RegistryError, match="404"):
            await client.download_plugin(f"source/testsrc@{wrong}", tmp_path / "d")
    assert not (tmp_path / "c").exists() or os.listdir(tmp_path / "c") == []


@pytest.mark.registry
@asyncio_only
async def test_tampered_layer_leaves_nothing(registry: RegistryServer, tmp_path: Path) -> None:
    binary = os.urandom(200_000)
    async with OciRegistryClient(registry.config()) as client:
        await push_plugin(client, f"source/tampered:{TAG}", binary, metadata(kind="tampered"))
        blob = _blob_path(registry, sha256_digest(binary))
        data = bytearray(blob.read_bytes())
        data[1000] ^= 0xFF
        blob.write_bytes(bytes(data))
        dest = tmp_path / "out"
        with pytest.raises(RegistryError, match="does not match its digest"):
            await client.download_plugin(f"source/tampered:{TAG}", dest)
    assert os.listdir(dest) == []


@pytest.mark.registry
@asyncio_only
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({ANN_KIND: "../../x"}, "io.drasi.plugin.kind"),
        ({ANN_KIND: "a/b"}, "io.drasi.plugin.kind"),
        ({ANN_TYPE: "../../../etc"}, "io.drasi.plugin.type"),
        ({ANN_TYPE: "Source"}, "io.drasi.plugin.type"),
        ({ANN_KIND: ""}, "io.drasi.plugin.kind"),
        ({ANN_KIND: "-x"}, "io.drasi.plugin.kind"),
    ],
)
async def test_malicious_annotations_rejected(
    registry: RegistryServer,
    plugin_binary: bytes,
    tmp_path: Path,
    overrides: dict[str, str],
    message: str,
) -> None:
    dest = tmp_path / "dest" / "plugins"
    async with OciRegistryClient(registry.config()) as client:
        await push_plugin(
            client,
            f"source/evil:{TAG}",
            plugin_binary,
            metadata(kind="evil"),
            annotation_overrides=overrides,
        )
        with pytest.raises(RegistryError, match=message):
            await client.download_plugin(f"source/evil:{TAG}", dest)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.registry
@asyncio_only
async def test_layer_checks_and_size_caps(
    registry: RegistryServer, plugin_binary: bytes, tmp_path: Path
) -> None:
    config = registry.config()
    async with OciRegistryClient(config) as client:
        await push_plugin(
            client,
            f"source/odd:{TAG}",
            plugin_binary,
            metadata(kind="odd"),
            extra_layers=[("application/x-shellscript", b"rm -rf /")],
        )
        with pytest.raises(RegistryError, match="unexpected layer media type"):
            await client.download_plugin(f"source/odd:{TAG}", tmp_path)
        await push_plugin(client, f"source/big:{TAG}", plugin_binary, metadata(kind="big"))
    small = registry.config(
        namespace=config.default_registry.split("/", 1)[1], max_plugin_size=1000, max_blob_size=50
    )
    async with OciRegistryClient(small) as client:
        with pytest.raises(RegistryError, match="exceeds the 1000-byte limit"):
            await client.download_plugin(f"source/big:{TAG}", tmp_path)
        with pytest.raises(RegistryError, match="exceeds the 50-byte limit"):
            await client.fetch_metadata(f"source/big:{TAG}")
    assert os.listdir(tmp_path) == []


@pytest.mark.registry
async def test_search_plugins(registry: RegistryServer, plugin_binary: bytes) -> None:
    async with OciRegistryClient(registry.config()) as client:
        for tag in (
            "0.2.0-linux-amd64",
            "0.10.0-linux-amd64",
            "0.10.0-linux-arm64",
            "0.10.0-rc.1-linux-amd64",
            "latest",
        ):
            await push_plugin(
                client, f"source/postgres:{tag}", plugin_binary, metadata(kind="postgres")
            )
        await push_plugin(
            client,
            "reaction/storedproc-mssql:1.0.0-windows-msvc-amd64",
            plugin_binary,
            metadata(kind="storedproc-mssql", plugin_type="reaction"),
        )
        await push_directory(
            client, ["source.postgres", "reaction.storedproc-mssql", "source.ghost", "nodot"]
        )
        everything = await client.search_plugins("")
        by_ref = {r.reference: r for r in everything}
        assert sorted(by_ref) == ["reaction/storedproc-mssql", "source/ghost", "source/postgres"]
        assert await client.search_plugins("*") == everything
        postgres = by_ref["source/postgres"]
        assert postgres.full_reference == f"{client.config.default_registry}/source/postgres"
        assert [(v.version, v.suffixes) for v in postgres.versions] == [
            ("0.2.0", ("linux-amd64",)),
            ("0.10.0-rc.1", ("linux-amd64",)),
            ("0.10.0", ("linux-amd64", "linux-arm64")),
        ]
        assert [(v.version, v.suffixes) for v in by_ref["reaction/storedproc-mssql"].versions] == [
            ("1.0.0", ("windows-msvc-amd64",))
        ]
        ghost = by_ref["source/ghost"]
        assert ghost.error is not None and "HTTP 404" in ghost.error
        assert ghost.versions == ()
        assert [r.reference for r in await client.search_plugins("post")] == ["source/postgres"]
        assert [r.reference for r in await client.search_plugins("source/postgres")] == [
            "source/postgres"
        ]
        assert await client.search_plugins("source/post") == []
        assert await client.search_plugins("Postgres") == []


@pytest.mark.registry
async def test_basic_auth_registry(
    auth_registry: RegistryServer, plugin_binary: bytes, tmp_path: Path
) -> None:
    config = auth_registry.config()
    async with OciRegistryClient(config) as client:
        await push_plugin(client, f"source/secure:{TAG}", plugin_binary, metadata(kind="secure"))
        assert await client.list_tags("source/secure") == [TAG]
        result = await client.download_plugin(f"source/secure:{TAG}", tmp_path)
        assert result.path.read_bytes() == plugin_binary
    namespace = config.default_registry.split("/", 1)[1]
    bad = auth_registry.config(namespace=namespace, auth=RegistryAuth.basic("drasi", "wrong"))
    async with OciRegistryClient(bad) as client:
        with pytest.raises(RegistryError, match=r"HTTP 401.*check the registry credentials"):
            await client.list_tags("source/secure")
    anonymous = auth_registry.config(namespace=namespace, auth=RegistryAuth.anonymous())
    async with OciRegistryClient(anonymous) as client:
        with pytest.raises(RegistryError, match=r"source/secure.*HTTP 401.*authentication"):
            await client.get_manifest(f"source/secure:{TAG}")


@pytest.mark.registry
@asyncio_only
async def test_https_unless_insecure(registry: RegistryServer) -> None:
    config = registry.config(insecure_registries=[], max_retries=0)
    async with OciRegistryClient(config) as client:
        with pytest.raises(RegistryError, match=f"https://{registry.host}/v2/"):
            await client.list_tags("source/x")


async def test_bearer_token_flow(
    mini_registry_factory: Callable[..., MiniRegistry], plugin_binary: bytes, tmp_path: Path
) -> None:
    server = mini_registry_factory(token_auth=True, username="bot", password="pw")
    config = mini_config(server, auth=RegistryAuth.basic("bot", "pw"))
    async with OciRegistryClient(config) as client:
        digest = await push_plugin(client, f"source/tok:{TAG}", plugin_binary, metadata(kind="tok"))
        assert await client.list_tags("source/tok") == [TAG]
        assert await client.list_tags("source/tok") == [TAG]
        result = await client.download_plugin(f"source/tok:{TAG}", tmp_path)
        assert result.digest == digest
        assert result.path.read_bytes() == plugin_binary
    repo = f"{config.default_registry.split('/', 1)[1]}/source/tok"
    scopes = [r["scope"] for r in server.token_requests]
    # one token per repository and action set, reused until it expires
    assert scopes == [f"repository:{repo}:pull,push", f"repository:{repo}:pull"]
    assert {r["service"] for r in server.token_requests} == {"mini-registry"}

    wrong = mini_config(
        server, default_registry=config.default_registry, auth=RegistryAuth.basic("bot", "nope")
    )
    async with OciRegistryClient(wrong) as client:
        with pytest.raises(RegistryError, match=r"token request .* HTTP 401.*credentials"):
            await client.list_tags("source/tok")


async def test_bearer_token_expiry(mini_registry_factory: Callable[..., MiniRegistry]) -> None:
    server = mini_registry_factory(token_auth=True, token_ttl=5)  # shorter than the margin
    async with OciRegistryClient(mini_config(server)) as client:
        await client.push_blob("source/exp", b"x")
        before = len(server.token_requests)
        await client.list_tags("source/exp")
        await client.list_tags("source/exp")
        assert len(server.token_requests) == before + 2


async def test_tag_pagination(mini_registry_factory: Callable[..., MiniRegistry]) -> None:
    server = mini_registry_factory(page_size=2)
    tags = [f"0.{i}.0-linux-amd64" for i in range(7)]
    async with OciRegistryClient(mini_config(server)) as client:
        for tag in tags:
            await client.push_manifest(f"source/paged:{tag}", b'{"schemaVersion":2}', OCI_MANIFEST)
        assert await client.list_tags("source/paged") == sorted(tags)
    assert server.requests("GET", "/tags/list") == 4

    looping = mini_registry_factory(page_size=2, link_loop=True)
    async with OciRegistryClient(mini_config(looping)) as client:
        for tag in tags[:3]:
            await client.push_manifest(f"source/loop:{tag}", b'{"schemaVersion":2}', OCI_MANIFEST)
        with pytest.raises(RegistryError, match="pagination loops"):
            await client.list_tags("source/loop")
    capped = mini_registry_factory(page_size=1)
    async with OciRegistryClient(mini_config(capped, max_tag_pages=2)) as client:
        for tag in tags[:3]:
            await client.push_manifest(f"source/cap:{tag}", b'{"schemaVersion":2}', OCI_MANIFEST)
        with pytest.raises(RegistryError, match="more than 2 pages"):
            await client.list_tags("source/cap")


async def test_retries_on_5xx(
    mini_registry_factory: Callable[..., MiniRegistry], plugin_binary: bytes
) -> None:
    server = mini_registry_factory()
    async with OciRegistryClient(mini_config(server)) as client:
        digest = await push_plugin(
            client, f"source/flaky:{TAG}", plugin_binary, metadata(kind="flaky")
        )
        server.fail("GET", "/manifests/", 2, 503)
        assert (await client.get_manifest(f"source/flaky:{TAG}")).digest == digest
        assert server.requests("GET", "/manifests/") == 3
        server.fail("GET", "/tags/list", 1, 429)
        assert await client.list_tags("source/flaky") == [TAG]
    async with OciRegistryClient(
        mini_config(server, max_retries=1, default_registry=client.config.default_registry)
    ) as client:
        server.fail("GET", "/manifests/", 2, 503)
        with pytest.raises(RegistryError, match=f"source/flaky:{TAG}: HTTP 503"):
            await client.get_manifest(f"source/flaky:{TAG}")


async def test_manifest_digest_mismatch(mini_registry_factory: Callable[..., MiniRegistry]) -> None:
    server = mini_registry_factory()
    async with OciRegistryClient(mini_config(server)) as client:
        digest = await client.push_manifest(
            "source/m:1", b'{"schemaVersion":2,"layers":[]}', OCI_MANIFEST
        )
        name = f"{client.config.default_registry.split('/', 1)[1]}/source/m"
        forged = b'{"schemaVersion":2,"layers":[],"annotations":{"x":"y"}}'
        server.manifests[(name, digest)] = (forged, OCI_MANIFEST)
        with pytest.raises(RegistryError, match="Docker-Content-Digest"):
            await client.get_manifest("source/m:1")
        # A registry that lies consistently is still caught by a digest reference.
        forged_digest = "sha256:" + hashlib.sha256(forged).hexdigest()
        server.manifests[(name, forged_digest)] = (forged, OCI_MANIFEST)
        server.manifests[(name, digest)] = (forged, OCI_MANIFEST)
        server.blobs.pop(digest, None)
        with pytest.raises(RegistryError):
            await client.get_manifest(f"source/m@{digest}")


async def test_truncated_download_leaves_nothing(
    mini_registry_factory: Callable[..., MiniRegistry], tmp_path: Path
) -> None:
    server = mini_registry_factory()
    binary = os.urandom(300_000)
    async with OciRegistryClient(mini_config(server, max_retries=0)) as client:
        await push_plugin(client, f"source/cut:{TAG}", binary, metadata(kind="cut"))
        server.truncated.add(sha256_digest(binary))
        with pytest.raises(RegistryError, match="interrupted after"):
            await client.download_plugin(f"source/cut:{TAG}", tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.registry
@asyncio_only
async def test_registry_killed_mid_download(fresh_registry: RegistryServer, tmp_path: Path) -> None:
    binary = os.urandom(24 * 1024 * 1024)
    dest = tmp_path / "dest"

    def kill_when_started(done: int, total: int) -> None:
        if done > 0 and fresh_registry.process.poll() is None:
            fresh_registry.process.kill()
            fresh_registry.process.wait(5)

    async with OciRegistryClient(fresh_registry.config(max_retries=1)) as client:
        await push_plugin(client, f"source/gone:{TAG}", binary, metadata(kind="gone"))
        with pytest.raises(RegistryError, match=r"source/gone:.*interrupted after \d+ bytes"):
            await client.download_plugin(f"source/gone:{TAG}", dest, progress=kill_when_started)
    assert os.listdir(dest) == []


@asyncio_only
async def test_unreachable_and_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = RegistryConfig(
        default_registry=f"127.0.0.1:{port}/ns",
        insecure_registries=[f"127.0.0.1:{port}"],
        max_retries=2,
        backoff_base=0.01,
    )
    async with OciRegistryClient(config) as client:
        with pytest.raises(RegistryTransportError, match=r"ConnectError.*after 3 attempts"):
            await client.list_tags("source/x")

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        config = RegistryConfig(
            default_registry=f"{host}/ns", insecure_registries=[host], timeout=0.3, max_retries=0
        )
        async with OciRegistryClient(config) as client:
            with pytest.raises(RegistryTransportError, match="ReadTimeout"):
                await client.get_manifest("source/x:1")
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        silent.close()


async def test_push_blob_is_idempotent(mini_registry_factory: Callable[..., MiniRegistry]) -> None:
    server = mini_registry_factory()
    async with OciRegistryClient(mini_config(server)) as client:
        first = await client.push_blob("source/b", b"payload")
        second = await client.push_blob("source/b", b"payload")
        assert first == second
        assert first.digest == sha256_digest(b"payload")
        assert await client.fetch_blob("source/b", first) == b"payload"
        wrong = Descriptor("application/octet-stream", sha256_digest(b"other"), 7)
        server.blobs[wrong.digest] = b"payload"
        with pytest.raises(RegistryError, match="does not match its digest"):
            await client.fetch_blob("source/b", wrong)
    assert server.requests("POST", "/blobs/uploads/") == 1


async def test_fetch_metadata_reads_only_the_metadata_layer(
    mini_registry_factory: Callable[..., MiniRegistry], tmp_path: Path
) -> None:
    server = mini_registry_factory()
    binary = os.urandom(50_000)
    meta = metadata(kind="meta")
    async with OciRegistryClient(mini_config(server)) as client:
        await push_plugin(client, f"source/meta:{TAG}", binary, meta)
        assert await client.fetch_metadata(f"source/meta:{TAG}") == meta
        assert server.requests("GET", f"/blobs/{sha256_digest(binary)}") == 0
        assert server.requests("GET", f"/blobs/{sha256_digest(meta.to_json_bytes())}") == 1
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        with pytest.raises(RegistryError, match="cannot create"):
            await client.download_plugin(f"source/meta:{TAG}", blocker / "sub")
        assert server.requests("GET", f"/blobs/{sha256_digest(binary)}") == 0
