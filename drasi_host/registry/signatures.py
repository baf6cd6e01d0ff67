"""Finding the signatures of an artifact in its registry (discovery, not crypto).

For manifest digest ``D`` = ``<alg>:<hex>`` of repository ``R``, three places are
looked at, in this order, and everything found is returned:

1. the OCI referrers API, ``GET /v2/R/referrers/D``: an index whose entries
   with a ``sigstore.bundle`` artifact type (or without one, then judged by the
   manifest) are fetched; a manifest whose artifact type or first layer media
   type contains ``sigstore.bundle`` contributes that layer as a bundle;
2. the referrers tag fallback ``<alg>-<hex>``: an image index listing such
   manifests (how cosign stores bundles on registries without the API);
3. the classic cosign tag ``<alg>-<hex>.sig``: every layer of type
   ``application/vnd.dev.cosign.simplesigning.v1+json`` (or
   ``application/octet-stream``) is a simplesigning payload with its
   annotations (signature, certificate, chain, log bundle).

This module sits on top of the registry client (:mod:`.distribution`) and does
no cryptography; the materials it returns are checked offline by
:mod:`.verification`.

A 404 (no referrers API, no such tag) means "nothing there"; any other failure
raises ``RegistryError``, so a registry that is down or refuses access can never
pass for an unsigned artifact.  Blobs are size-capped and digest-checked by the
client; a manifest listed twice is read once; at most ``max_entries``
candidates are read per place.
"""

from __future__ import annotations

import logging

from drasi_host.registry.artifact import Descriptor, Manifest, check_digest_syntax
from drasi_host.registry.distribution import DistributionClient
from drasi_host.registry.materials import BundleMaterial, SignatureMaterial, SimpleSigningMaterial
from drasi_host.registry.reference import PluginReference

log = logging.getLogger("drasi_host.registry")

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLESIGNING_LAYER_TYPES = (SIMPLESIGNING_MEDIA_TYPE, "application/octet-stream")
BUNDLE_MARKER = "sigstore.bundle"
DEFAULT_MAX_ENTRIES = 64


def _bundle_layer(manifest: Manifest) -> Descriptor | None:
    if manifest.is_index:
        return None
    layers = manifest.layers()
    if not layers:
        return None
    if BUNDLE_MARKER in layers[0].media_type or BUNDLE_MARKER in (manifest.artifact_type or ""):
        return layers[0]
    return None


async def _bundles_from_index(
    client: DistributionClient,
    repo: PluginReference,
    index: Manifest,
    subject: str,
    seen: set[str],
    max_entries: int,
) -> list[BundleMaterial]:
    found: list[BundleMaterial] = []
    count = 0
    for entry in index.manifests():
        if entry.digest in seen:
            continue
        if entry.artifact_type and BUNDLE_MARKER not in entry.artifact_type:
            continue
        count += 1
        if count > max_entries:
            log.warning(
                "%s: more than %d signature candidates for %s; the rest are ignored",
                repo,
                max_entries,
                subject,
            )
            break
        seen.add(entry.digest)
        manifest = await client.get_manifest(repo.with_digest(entry.digest))
        layer = _bundle_layer(manifest)
        if layer is None:
            continue
        declared_subject = manifest.data.get("subject")
        if isinstance(declared_subject, dict) and declared_subject.get("digest") not in (
            None,
            subject,
        ):
            log.debug("%s: %s refers to another subject; ignored", repo, entry.digest)
            continue
        found.append(BundleMaterial(bundle=await client.fetch_blob(repo, layer)))
    return found


async def fetch_signature_materials(
    client: DistributionClient,
    ref: PluginReference,
    digest: str,
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[SignatureMaterial]:
    """All signature materials stored for ``digest`` in ``ref``'s repository."""
    check_digest_syntax(digest, f"signatures of {ref}")
    repo = PluginReference(registry=ref.registry, repository=ref.repository)
    algorithm, _, hex_digest = digest.partition(":")
    materials: list[SignatureMaterial] = []
    seen: set[str] = set()

    referrers = await client.get_referrers(repo, digest)
    if referrers is not None:
        materials.extend(
            await _bundles_from_index(client, repo, referrers, digest, seen, max_entries)
        )

    fallback = await client.find_manifest(repo.with_tag(f"{algorithm}-{hex_digest}"))
    if fallback is not None:
        if fallback.is_index:
            materials.extend(
                await _bundles_from_index(client, repo, fallback, digest, seen, max_entries)
            )
        else:
            log.debug("%s: tag %s-%s is not an image index; ignored", repo, algorithm, hex_digest)

    classic = await client.find_manifest(repo.with_tag(f"{algorithm}-{hex_digest}.sig"))
    if classic is not None and not classic.is_index:
        layers = [
            layer for layer in classic.layers() if layer.media_type in SIMPLESIGNING_LAYER_TYPES
        ]
        if len(layers) > max_entries:
            log.warning(
                "%s: more than %d simplesigning layers for %s; the rest are ignored",
                repo,
                max_entries,
                digest,
            )
        for layer in layers[:max_entries]:
            payload = await client.fetch_blob(repo, layer)
            materials.append(
                SimpleSigningMaterial(payload=payload, annotations=dict(layer.annotations))
            )
    return materials


__all__ = [
    "BUNDLE_MARKER",
    "SIMPLESIGNING_LAYER_TYPES",
    "SIMPLESIGNING_MEDIA_TYPE",
    "fetch_signature_materials",
]
