"""Downloading a plugin: resolve → discover → verify → stream → write.

:func:`pull_plugin` is the one place where the layers meet: the registry
client (:mod:`.distribution`) resolves the manifest, signature discovery
(:mod:`.signatures`) finds the materials for its digest, the offline verifier
(:mod:`.verification`) decides, and only then is the plugin binary streamed
to a temporary file, hashed, checked and renamed into place.  A refused
signature writes nothing; any failure leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from drasi_host.errors import IntegrityError, RegistryError, SignatureVerificationError
from drasi_host.registry.artifact import (
    ANN_KIND,
    ANN_TYPE,
    PLUGIN_BINARY,
    PLUGIN_LAYER_TYPES,
    SAFE_NAME_RE,
    Descriptor,
    Manifest,
)
from drasi_host.registry.distribution import DistributionClient, ProgressCallback
from drasi_host.registry.materials import SignatureStatus, VerificationResult
from drasi_host.registry.platform import library_filename
from drasi_host.registry.reference import PluginReference
from drasi_host.registry.signatures import fetch_signature_materials
from drasi_host.registry.verification import OfflineVerifier


@attrs.frozen
class DownloadResult:
    """A downloaded plugin: where it is, the manifest digest it came from, the
    signature verification result (None without a verifier), its size and the
    SHA-256 of the file."""

    path: Path
    digest: str
    verification: VerificationResult | None = None
    size: int = 0
    file_sha256: str = ""


def plugin_binary(
    parsed: PluginReference, manifest: Manifest, max_size: int
) -> tuple[Descriptor, str]:
    """The binary layer of a plugin artifact and the file name it is written
    to (from the ``io.drasi.plugin.type``/``kind`` annotations, which must
    match ``[a-z0-9][a-z0-9_-]*``)."""
    reference = str(parsed)
    annotations = manifest.annotations
    plugin_type, kind = annotations.get(ANN_TYPE, ""), annotations.get(ANN_KIND, "")
    for name, value in ((ANN_TYPE, plugin_type), (ANN_KIND, kind)):
        if not SAFE_NAME_RE.fullmatch(value):
            raise RegistryError(
                f"{parsed}: annotation {name}={value!r} is not a valid "
                f"plugin name ([a-z0-9][a-z0-9_-]*)",
                reference=reference,
            )
    layers = manifest.layers()
    if not layers:
        raise RegistryError(f"{parsed}: the artifact has no layers", reference=reference)
    for layer in layers:
        if layer.media_type not in PLUGIN_LAYER_TYPES:
            raise RegistryError(
                f"{parsed}: unexpected layer media type {layer.media_type!r}", reference=reference
            )
    binary = next((layer for layer in layers if layer.media_type == PLUGIN_BINARY), None)
    if binary is None:
        raise RegistryError(
            f"{parsed}: the artifact has no {PLUGIN_BINARY} layer", reference=reference
        )
    if binary.size > max_size:
        raise RegistryError(
            f"{parsed}: the plugin binary ({binary.size} bytes) exceeds the {max_size}-byte limit",
            reference=reference,
        )
    filename = library_filename(plugin_type, kind)
    if Path(filename).name != filename or filename in (".", ".."):
        raise RegistryError(f"{parsed}: unsafe file name {filename!r}", reference=reference)
    return binary, filename


async def pull_plugin(
    client: DistributionClient,
    ref: str | PluginReference,
    dest_dir: str | os.PathLike[str],
    *,
    verifier: OfflineVerifier | None = None,
    progress: ProgressCallback | None = None,
    expected_file_sha256: str | None = None,
) -> DownloadResult:
    """Download the plugin ``ref`` names into ``dest_dir``.

    With an enabled ``verifier``, the signatures of the manifest digest are
    found and verified before anything is downloaded, and anything but
    ``VERIFIED`` raises :class:`SignatureVerificationError` (nothing written).
    ``expected_file_sha256`` pins the binary (a lockfile's hash): a manifest
    whose binary layer is another raises :class:`IntegrityError` before any
    download.
    """
    parsed = client.parse(ref)
    top, manifest = await client.image_manifest(parsed)
    binary, filename = plugin_binary(parsed, manifest, client.config.max_plugin_size)
    if expected_file_sha256 is not None and binary.digest != f"sha256:{expected_file_sha256}":
        raise IntegrityError(
            f"{parsed}: the plugin binary is {binary.digest}, the lockfile expects "
            f"sha256:{expected_file_sha256}",
            reference=str(parsed),
        )
    verification: VerificationResult | None = None
    if verifier is not None:
        if verifier.config.enabled:
            pinned = parsed.with_digest(top.digest)
            materials = await fetch_signature_materials(client, pinned, top.digest)
            verification = verifier.verify_materials(materials, top.digest)
            if verification.status is not SignatureStatus.VERIFIED:
                reason = f": {verification.reason}" if verification.reason else ""
                raise SignatureVerificationError(
                    f"{parsed}: signature verification failed "
                    f"({verification.status.value}){reason}",
                    verification,
                    reference=str(parsed),
                )
        else:
            verification = VerificationResult(
                SignatureStatus.UNSIGNED, reason="verification disabled"
            )
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(
            f"{parsed}: cannot create {dest}: {exc}", reference=str(parsed)
        ) from exc
    streamed = await client.stream_blob_to_file(parsed, binary, dest / filename, progress)
    return DownloadResult(
        path=streamed.path,
        digest=top.digest,
        verification=verification,
        size=streamed.size,
        file_sha256=streamed.sha256,
    )


__all__ = ["DownloadResult", "plugin_binary", "pull_plugin"]
