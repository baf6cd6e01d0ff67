"""PluginResolver against a real registry (REGISTRY.md section 5)."""

from __future__ import annotations

import pytest
from registry_helpers import metadata, push_plugin
from registry_servers import RegistryServer

import drasi_host
from drasi_host.errors import RegistryError
from drasi_host.registry.artifact import ANN_CORE_VERSION, ANN_SDK_VERSION
from drasi_host.registry.oci import OciRegistryClient
from drasi_host.registry.resolver import (
    HostVersionInfo,
    PluginResolver,
    compatibility_problems,
)

pytestmark = pytest.mark.anyio
LINUX = HostVersionInfo("0.4.2", "0.4.1", "0.4.0", "x86_64-unknown-linux-gnu")


async def _publish(client: OciRegistryClient, binary: bytes) -> dict[str, str]:
    digests = {}
    for tag, sdk in [
        ("0.1.0-linux-amd64", "0.4.0"),
        ("0.2.0-linux-amd64", "0.4.9"),
        ("0.3.0-linux-amd64", "0.5.0"),  # newest release, incompatible SDK
        ("0.4.0-rc.1-linux-amd64", "0.4.2"),  # pre-release: never chosen without a tag
        ("v0.5.0-linux-amd64", "0.4.2"),  # not strict semver
        ("0.9.0-linux-arm64", "0.4.2"),  # another platform
        ("1.0.0-windows-amd64", "0.4.2"),
    ]:
        digests[tag] = await push_plugin(
            client,
            f"source/postgres:{tag}",
            binary,
            metadata(kind="postgres", version=tag, sdk=sdk),
        )
    return digests


@pytest.mark.registry
async def test_resolve_latest_and_tagged(registry: RegistryServer, plugin_binary: bytes) -> None:
    async with OciRegistryClient(registry.config()) as client:
        digests = await _publish(client, plugin_binary)
        resolver = PluginResolver(client, LINUX)
        resolved = await resolver.resolve("source/postgres")
        repo = f"{client.config.default_registry}/source/postgres"
        assert resolved.version == "0.2.0"
        assert resolved.tag == "0.2.0-linux-amd64"
        assert resolved.digest == digests["0.2.0-linux-amd64"]
        assert resolved.reference == f"{repo}@{resolved.digest}"
        assert (resolved.sdk_version, resolved.core_version, resolved.lib_version) == (
            "0.4.9",
            "0.4.1",
            "0.4.0",
        )
        assert resolved.platform == "linux/amd64"
        assert resolved.filename == "libdrasi_source_postgres.so"

        tagged = await resolver.resolve("source/postgres:0.1.0")
        assert tagged.digest == digests["0.1.0-linux-amd64"]
        assert tagged.version == "0.1.0"
        pre = await resolver.resolve("source/postgres:0.4.0-rc.1")
        assert pre.version == "0.4.0-rc.1"

        with pytest.raises(
            RegistryError,
            match=r"0\.3\.0-linux-amd64 is incompatible.*"
            r"sdk-version 0\.5\.0 \(host has 0\.4\.2\)",
        ):
            await resolver.resolve("source/postgres:0.3.0")
        with pytest.raises(RegistryError, match=r"tags tried: 0\.7\.0-linux-amd64"):
            await resolver.resolve("source/postgres:0.7.0")

        pinned = await resolver.resolve(resolved.reference)
        assert pinned.digest == resolved.digest
        assert pinned.version == "0.2.0-linux-amd64"  # the version annotation


@pytest.mark.registry
async def test_msvc_falls_back_to_plain_windows(
    registry: RegistryServer, plugin_binary: bytes
) -> None:
    windows = HostVersionInfo("0.4.2", "0.4.1", "0.4.0", "x86_64-pc-windows-msvc")
    async with OciRegistryClient(registry.config()) as client:
        digests = await _publish(client, plugin_binary)
        resolver = PluginResolver(client, windows)
        resolved = await resolver.resolve("source/postgres")
        assert resolved.tag == "1.0.0-windows-amd64"
        assert resolved.digest == digests["1.0.0-windows-amd64"]
        assert resolved.filename == "drasi_source_postgres.dll"
        assert resolved.platform == "windows/amd64"
        tagged = await resolver.resolve("source/postgres:1.0.0")
        assert tagged.tag == "1.0.0-windows-amd64"
        with pytest.raises(
            RegistryError, match=r"tags tried: 0\.1\.0-windows-msvc-amd64, 0\.1\.0-windows-amd64"
        ):
            await resolver.resolve("source/postgres:0.1.0")


@pytest.mark.registry
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_nothing_fits_explains(registry: RegistryServer, plugin_binary: bytes) -> None:
    host = HostVersionInfo("0.6.0", "0.4.1", "0.4.0", "x86_64-unknown-linux-gnu")
    async with OciRegistryClient(registry.config()) as client:
        await _publish(client, plugin_binary)
        with pytest.raises(RegistryError) as info:
            await PluginResolver(client, host).resolve("source/postgres")
        message = str(info.value)
        assert "no compatible version found for x86_64-unknown-linux-gnu" in message
        assert "Tags seen:" in message and "0.9.0-linux-arm64" in message
        assert "0.4.0-rc.1-linux-amd64: not a release version" in message
        assert "v0.5.0-linux-amd64: not a release version" in message
        assert "0.3.0-linux-amd64: incompatible (io.drasi.plugin.sdk-version 0.5.0" in message
        assert "0.1.0-linux-amd64: incompatible" in message

        darwin = HostVersionInfo("0.4.2", "0.4.1", "0.4.0", "aarch64-apple-darwin")
        with pytest.raises(RegistryError, match="no tag has a suffix of this platform"):
            await PluginResolver(client, darwin).resolve("source/postgres")
        mips = HostVersionInfo("0.4.2", "0.4.1", "0.4.0", "mips-unknown-linux-gnu")
        with pytest.raises(RegistryError, match="has no published platform"):
            await PluginResolver(client, mips).resolve("source/postgres")
        with pytest.raises(RegistryError, match="HTTP 404"):
            await PluginResolver(client, LINUX).resolve("source/absent")


def test_compatibility_rules() -> None:
    good = {
        ANN_SDK_VERSION: "0.4.7",
        ANN_CORE_VERSION: "0.4.0",
        "io.drasi.plugin.lib-version": "0.4.99",
    }
    assert compatibility_problems(good, LINUX) == []
    assert compatibility_problems({**good, ANN_CORE_VERSION: "0.3.1"}, LINUX) == [
        "io.drasi.plugin.core-version 0.3.1 (host has 0.4.1)"
    ]
    assert compatibility_problems({ANN_SDK_VERSION: "0.4.2"}, LINUX) == [
        "io.drasi.plugin.core-version missing",
        "io.drasi.plugin.lib-version missing",
    ]
    odd_host = HostVersionInfo("dev", "0.4.1", "0.4.0", "x86_64-unknown-linux-gnu")
    assert compatibility_problems({**good, ANN_SDK_VERSION: "dev"}, odd_host) == []
    assert compatibility_problems({**good, ANN_SDK_VERSION: "0.4.2"}, odd_host) == [
        "io.drasi.plugin.sdk-version 0.4.2 (host has dev)"
    ]
    assert compatibility_problems({**good, "io.drasi.plugin.kind": "../x"}, LINUX) == [
        "io.drasi.plugin.kind '../x' is not a valid plugin name"
    ]


def test_host_version_info_current() -> None:
    if hasattr(drasi_host, "HOST_SDK_VERSION") and hasattr(drasi_host, "host_target_triple"):
        info = HostVersionInfo.current()
        assert info.sdk_version == drasi_host.HOST_SDK_VERSION
        assert info.target_triple == drasi_host.host_target_triple()
    else:
        with pytest.raises(RegistryError, match="HOST_SDK_VERSION"):
            HostVersionInfo.current()
