"""Building and publishing plugin artifacts in the exact published format."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import attrs

from drasi_host.registry.artifact import (
    DIRECTORY_CONFIG,
    DIRECTORY_LAYER,
    DIRECTORY_REPOSITORY,
    OCI_INDEX,
    OCI_MANIFEST,
    PLUGIN_BINARY,
    PLUGIN_CONFIG,
    PLUGIN_METADATA,
    Descriptor,
    PluginArtifactMetadata,
    build_index,
    build_manifest,
    sha256_digest,
)
from drasi_host.registry.oci import OciRegistryClient
from drasi_host.registry.reference import PluginReference

HOST_TRIPLE = "x86_64-unknown-linux-gnu"


def unique_namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


def metadata(
    kind: str = "testsrc",
    plugin_type: str = "source",
    version: str = "0.1.0",
    sdk: str = "0.4.2",
    core: str = "0.4.1",
    lib: str = "0.4.0",
    triple: str = HOST_TRIPLE,
) -> PluginArtifactMetadata:
    return PluginArtifactMetadata(
        name=f"drasi-{plugin_type}-{kind}",
        kind=kind,
        type=plugin_type,
        version=version,
        sdk_version=sdk,
        core_version=core,
        lib_version=lib,
        target_triple=triple,
        description="test plugin",
        license="Apache-2.0",
    )


async def push_plugin(
    client: OciRegistryClient,
    ref: str | PluginReference,
    binary: bytes,
    meta: PluginArtifactMetadata,
    annotation_overrides: Mapping[str, str] | None = None,
    extra_layers: list[tuple[str, bytes]] | None = None,
) -> str:
    """Push ``binary`` as a plugin artifact (REGISTRY.md section 3); returns its digest."""
    config = await client.push_blob(ref, b"{}")
    binary_desc = await client.push_blob(ref, binary)
    meta_desc = await client.push_blob(ref, meta.to_json_bytes())
    layers = [
        attrs.evolve(binary_desc, media_type=PLUGIN_BINARY),
        attrs.evolve(meta_desc, media_type=PLUGIN_METADATA),
    ]
    for media_type, data in extra_layers or []:
        desc = await client.push_blob(ref, data)
        layers.append(attrs.evolve(desc, media_type=media_type))
    annotations = meta.annotations()
    annotations.update(annotation_overrides or {})
    manifest = build_manifest(attrs.evolve(config, media_type=PLUGIN_CONFIG), layers, annotations)
    return await client.push_manifest(ref, manifest, OCI_MANIFEST)


async def push_directory(client: OciRegistryClient, entries: list[str]) -> None:
    """Publish the plugin directory (one ``<type>.<kind>`` tag per entry)."""
    host_ns = client.config.default_registry
    repo = f"{host_ns}/{DIRECTORY_REPOSITORY}"
    config = await client.push_blob(repo, b"{}")
    layer = await client.push_blob(repo, b"{}")
    manifest = build_manifest(
        attrs.evolve(config, media_type=DIRECTORY_CONFIG),
        [attrs.evolve(layer, media_type=DIRECTORY_LAYER)],
    )
    for entry in entries:
        await client.push_manifest(f"{repo}:{entry}", manifest, OCI_MANIFEST)


BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_CONFIG = "application/vnd.oci.image.config.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


async def push_bundle(
    client: OciRegistryClient,
    repo: str,
    subject: Descriptor,
    bundle: bytes,
    media_type: str = BUNDLE_V03,
) -> Descriptor:
    """Store a bundle the way cosign's new bundle format does (a manifest whose
    ``subject`` is the artifact), untagged; returns the manifest's descriptor."""
    config = await client.push_blob(repo, b"{}")
    layer = await client.push_blob(repo, bundle)
    manifest = build_manifest(
        attrs.evolve(config, media_type=OCI_EMPTY),
        [attrs.evolve(layer, media_type=media_type)],
        {"dev.sigstore.bundle.content": "dsse-envelope"},
        artifact_type=media_type,
        subject=subject,
    )
    digest = await client.push_manifest(f"{repo}@{sha256_digest(manifest)}", manifest, OCI_MANIFEST)
    return Descriptor(OCI_MANIFEST, digest, len(manifest), artifact_type=media_type)


async def push_referrers_tag(
    client: OciRegistryClient, repo: str, subject_digest: str, entries: list[Descriptor]
) -> None:
    """The referrers tag fallback: an index tagged ``sha256-<hex>``."""
    tag = subject_digest.replace(":", "-")
    await client.push_manifest(f"{repo}:{tag}", build_index(entries), OCI_INDEX)


async def push_simplesigning(
    client: OciRegistryClient,
    repo: str,
    subject_digest: str,
    layers: list[tuple[bytes, dict[str, str]]],
    media_type: str = SIMPLESIGNING,
) -> None:
    """The classic cosign layout: a manifest tagged ``sha256-<hex>.sig``."""
    config = await client.push_blob(repo, b'{"architecture":"","os":""}')
    descriptors = []
    for payload, layer_annotations in layers:
        blob = await client.push_blob(repo, payload)
        descriptors.append(attrs.evolve(blob, media_type=media_type, annotations=layer_annotations))
    manifest = build_manifest(attrs.evolve(config, media_type=COSIGN_CONFIG), descriptors)
    tag = subject_digest.replace(":", "-") + ".sig"
    await client.push_manifest(f"{repo}:{tag}", manifest, OCI_MANIFEST)
