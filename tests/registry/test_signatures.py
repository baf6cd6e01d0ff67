"""Signature discovery: referrers API, referrers tag fallback, classic ``.sig``."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from mini_registry import MiniRegistry
from registry_helpers import (
    OCI_EMPTY,
    metadata,
    push_bundle,
    push_plugin,
    push_referrers_tag,
    push_simplesigning,
)
from registry_servers import RegistryServer, mini_config

from drasi_host.errors import RegistryError
from drasi_host.registry.artifact import OCI_MANIFEST, Descriptor, build_manifest, sha256_digest
from drasi_host.registry.cosign import BundleMaterial, SimpleSigningMaterial
from drasi_host.registry.oci import OciRegistryClient, RegistryAuth
from drasi_host.registry.signatures import fetch_signature_materials

pytestmark = pytest.mark.anyio
TAG = "0.1.0-linux-amd64"


async def _artifact(client: OciRegistryClient, kind: str) -> tuple[str, Descriptor]:
    ref = f"source/{kind}:{TAG}"
    digest = await push_plugin(client, ref, b"\x7fELF" + kind.encode(), metadata(kind=kind))
    size = len((await client.get_manifest(ref)).raw)
    repo = f"{client.config.default_registry}/source/{kind}"
    return repo, Descriptor(OCI_MANIFEST, digest, size)


def _bundle(n: int) -> bytes:
    return json.dumps(
        {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "n": n}
    ).encode()


async def test_all_three_places_in_order(
    mini_registry_factory: Callable[..., MiniRegistry],
) -> None:
    server = mini_registry_factory(referrers=True)
    async with OciRegistryClient(mini_config(server)) as client:
        repo, subject = await _artifact(client, "signed")
        via_api = await push_bundle(client, repo, subject, _bundle(1))
        via_tag = await push_bundle(client, repo, subject, _bundle(2))
        # The fallback index lists the API's manifest too: it is read once.
        await push_referrers_tag(client, repo, subject.digest, [via_tag, via_api])
        await push_simplesigning(
            client,
            repo,
            subject.digest,
            [
                (b'{"critical":1}', {"dev.cosignproject.cosign/signature": "a"}),
                (b'{"critical":2}', {"dev.cosignproject.cosign/signature": "b"}),
            ],
        )
        # Unrelated referrers are ignored: an SBOM and a bundle for another subject.
        sbom_layer = await client.push_blob(repo, b"{}")
        sbom = build_manifest(
            Descriptor(OCI_EMPTY, sbom_layer.digest, 2),
            [Descriptor("application/spdx+json", sbom_layer.digest, 2)],
            artifact_type="application/spdx+json",
            subject=subject,
        )
        await client.push_manifest(f"{repo}@{sha256_digest(sbom)}", sbom, OCI_MANIFEST)

        ref = client.parse(f"{repo}:{TAG}")
        materials = await fetch_signature_materials(client, ref, subject.digest)
    bundles = [m for m in materials if isinstance(m, BundleMaterial)]
    simple = [m for m in materials if isinstance(m, SimpleSigningMaterial)]
    assert len(materials) == 4
    assert materials[:2] == bundles and materials[2:] == simple
    # the referrers API lists both bundle manifests; the tag adds nothing new
    assert sorted(json.loads(b.bundle)["n"] for b in bundles) == [1, 2]
    assert [m.payload for m in simple] == [b'{"critical":1}', b'{"critical":2}']
    assert [m.annotations["dev.cosignproject.cosign/signature"] for m in simple] == ["a", "b"]
    assert server.requests("GET", "/referrers/") == 1


async def test_tag_fallback_without_referrers_api(
    mini_registry_factory: Callable[..., MiniRegistry],
) -> None:
    server = mini_registry_factory(referrers=False)
    async with OciRegistryClient(mini_config(server)) as client:
        repo, subject = await _artifact(client, "fallback")
        entry = await push_bundle(client, repo, subject, _bundle(7))
        await push_referrers_tag(client, repo, subject.digest, [entry])
        materials = await fetch_signature_materials(client, client.parse(repo), subject.digest)
    assert materials == [BundleMaterial(bundle=_bundle(7))]


@pytest.mark.registry
async def test_real_registry_layouts(registry: RegistryServer) -> None:
    async with OciRegistryClient(registry.config()) as client:
        repo, subject = await _artifact(client, "real")
        assert await fetch_signature_materials(client, client.parse(repo), subject.digest) == []
        entry = await push_bundle(client, repo, subject, _bundle(3))
        await push_referrers_tag(client, repo, subject.digest, [entry])
        await push_simplesigning(
            client,
            repo,
            subject.digest,
            [(b"payload", {"k": "v"})],
            media_type="application/octet-stream",
        )
        materials = await fetch_signature_materials(client, client.parse(repo), subject.digest)
    assert materials == [
        BundleMaterial(bundle=_bundle(3)),
        SimpleSigningMaterial(payload=b"payload", annotations={"k": "v"}),
    ]


async def test_failures_are_errors_not_unsigned(
    mini_registry_factory: Callable[..., MiniRegistry],
) -> None:
    server = mini_registry_factory(referrers=True)
    config = mini_config(server, max_retries=1)
    async with OciRegistryClient(config) as client:
        repo, subject = await _artifact(client, "broken")
        ref = client.parse(repo)
        server.fail("GET", "/referrers/", 2, 500)
        with pytest.raises(RegistryError, match="HTTP 500"):
            await fetch_signature_materials(client, ref, subject.digest)
        server.fail("GET", ".sig", 2, 502)
        with pytest.raises(RegistryError, match="HTTP 502"):
            await fetch_signature_materials(client, ref, subject.digest)
        await push_simplesigning(client, repo, subject.digest, [(b"payload", {})])
        server.blobs[sha256_digest(b"payload")] = b"PAYLOAD"
        with pytest.raises(RegistryError, match="does not match its digest"):
            await fetch_signature_materials(client, ref, subject.digest)
        with pytest.raises(RegistryError, match="invalid digest"):
            await fetch_signature_materials(client, ref, "sha256:xyz")

    locked = mini_registry_factory(token_auth=True, username="u", password="p")
    bad = mini_config(locked, auth=RegistryAuth.basic("u", "wrong"))
    async with OciRegistryClient(bad) as client:
        with pytest.raises(RegistryError, match="HTTP 401"):
            await fetch_signature_materials(client, client.parse("source/x"), subject.digest)
