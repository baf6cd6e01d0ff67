"""The plugin artifact format and the OCI documents it is made of.

A plugin is an OCI image manifest with an empty ``{}`` config of type
``application/vnd.drasi.plugin.v1+config``, a binary layer (the library) and a
metadata layer (JSON), and manifest annotations ``io.drasi.plugin.*`` that let a
resolver decide compatibility without downloading anything.  The plugin
directory is a separate repository whose tags (``<type>.<kind>``) name the
published plugins.

This module parses manifests and indexes into small typed objects, validates
digests and descriptors, and builds the documents a publisher pushes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from drasi_host.errors import RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

PLUGIN_CONFIG = "application/vnd.drasi.plugin.v1+config"
PLUGIN_BINARY = "application/vnd.drasi.plugin.v1+binary"
PLUGIN_METADATA = "application/vnd.drasi.plugin.v1+metadata"
PLUGIN_LAYER_TYPES = (PLUGIN_BINARY, PLUGIN_METADATA)
DIRECTORY_REPOSITORY = "drasi-plugin-directory"
DIRECTORY_CONFIG = "application/vnd.oci.image.config.v1+json"
DIRECTORY_LAYER = "application/vnd.drasi.plugin.directory.v1"

ANN_TITLE = "org.opencontainers.image.title"
ANN_VERSION = "org.opencontainers.image.version"
ANN_KIND = "io.drasi.plugin.kind"
ANN_TYPE = "io.drasi.plugin.type"
ANN_SDK_VERSION = "io.drasi.plugin.sdk-version"
ANN_CORE_VERSION = "io.drasi.plugin.core-version"
ANN_LIB_VERSION = "io.drasi.plugin.lib-version"
ANN_TARGET_TRIPLE = "io.drasi.plugin.target-triple"

_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64})|(sha512:[a-f0-9]{128})")
#: What a plugin type or kind must look like to become part of a file name.
SAFE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest_syntax(digest: object, what: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 hex>`` or ``sha512:<128 hex>``."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise RegistryError(f"{what}: invalid digest {digest!r}")
    return digest


def new_hasher(digest: str) -> Any:
    """A hashlib object for the algorithm of ``digest`` (already syntax-checked)."""
    return hashlib.new(digest.partition(":")[0])


def digest_matches(data: bytes, digest: str) -> bool:
    """Whether ``data`` hashes to ``digest``."""
    hasher = new_hasher(digest)
    hasher.update(data)
    return bool(digest.partition(":")[2] == hasher.hexdigest())


@attrs.frozen
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any, what: str) -> Descriptor:
        """Validate and build a descriptor from its JSON object."""
        if not isinstance(data, dict):
            raise RegistryError(f"{what}: descriptor is not an object")
        media_type = data.get("mediaType", "")
        size = data.get("size")
        if not isinstance(media_type, str):
            raise RegistryError(f"{what}: descriptor mediaType is not a string")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"{what}: descriptor has an invalid size {size!r}")
        digest = check_digest_syntax(data.get("digest"), what)
        annotations = _string_map(data.get("annotations"), f"{what}: descriptor annotations")
        artifact_type = data.get("artifactType")
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=annotations,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
            platform=platform if isinstance(platform, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise RegistryError(f"{what} must map strings to strings")
    return dict(value)


@attrs.frozen
class Manifest:
    """A fetched manifest or index, digest-checked, with its raw bytes."""

    media_type: str
    digest: str
    raw: bytes
    data: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES or (
            "manifests" in self.data and "layers" not in self.data
        )

    @property
    def annotations(self) -> dict[str, str]:
        return _string_map(self.data.get("annotations"), f"manifest {self.digest} annotations")

    @property
    def artifact_type(self) -> str | None:
        value = self.data.get("artifactType")
        return value if isinstance(value, str) else None

    def layers(self) -> list[Descriptor]:
        """The layers of an image manifest (an error for an index)."""
        if self.is_index:
            raise RegistryError(f"manifest {self.digest} is an image index, not a manifest")
        layers = self.data.get("layers", [])
        if not isinstance(layers, list):
            raise RegistryError(f"manifest {self.digest}: layers is not a list")
        return [
            Descriptor.from_json(layer, f"manifest {self.digest} layer {i}")
            for i, layer in enumerate(layers)
        ]

    def config(self) -> Descriptor | None:
        config = self.data.get("config")
        if config is None:
            return None
        return Descriptor.from_json(config, f"manifest {self.digest} config")

    def manifests(self) -> list[Descriptor]:
        """The entries of an image index (an error for a manifest)."""
        if not self.is_index:
            raise RegistryError(f"manifest {self.digest} is not an image index")
        entries = self.data.get("manifests", [])
        if not isinstance(entries, list):
            raise RegistryError(f"index {self.digest}: manifests is not a list")
        return [
            Descriptor.from_json(entry, f"index {self.digest} entry {i}")
            for i, entry in enumerate(entries)
        ]

    @classmethod
    def parse(cls, raw: bytes, media_type: str, digest: str, what: str) -> Manifest:
        """Parse ``raw`` (already digest-checked) as a manifest or index."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"{what}: manifest is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RegistryError(f"{what}: manifest is not a JSON object")
        declared = data.get("mediaType")
        if isinstance(declared, str) and declared:
            media_type = declared
        media_type = media_type.split(";")[0].strip()
        return cls(media_type=media_type, digest=digest, raw=raw, data=data)


@attrs.frozen
class PluginArtifactMetadata:
    """The metadata layer of a plugin artifact."""

    name: str
    kind: str
    type: str
    version: str
    sdk_version: str
    core_version: str
    lib_version: str
    target_triple: str
    description: str | None = None
    license: str | None = None

    @classmethod
    def from_json_bytes(cls, raw: bytes, what: str) -> PluginArtifactMetadata:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"{what}: metadata layer is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RegistryError(f"{what}: metadata layer is not a JSON object")
        values: dict[str, str | None] = {}
        for field in attrs.fields(cls):
            value = data.get(field.name)
            optional = field.default is None
            if value is None and optional:
                values[field.name] = None
                continue
            if not isinstance(value, str):
                raise RegistryError(
                    f"{what}: metadata field {field.name!r} is missing or not a string"
                )
            values[field.name] = value
        return cls(**values)  # type: ignore[arg-type]

    def to_json_bytes(self) -> bytes:
        data = {k: v for k, v in attrs.asdict(self).items() if v is not None}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    def annotations(self) -> dict[str, str]:
        """The manifest annotations a publisher writes for this plugin."""
        return {
            ANN_TITLE: self.name,
            ANN_VERSION: self.version,
            ANN_KIND: self.kind,
            ANN_TYPE: self.type,
            ANN_SDK_VERSION: self.sdk_version,
            ANN_CORE_VERSION: self.core_version,
            ANN_LIB_VERSION: self.lib_version,
            ANN_TARGET_TRIPLE: self.target_triple,
        }


def build_manifest(
    config: Descriptor,
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
    *,
    artifact_type: str | None = None,
    subject: Descriptor | None = None,
) -> bytes:
    """Serialise an OCI image manifest."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config.to_json()
    doc["layers"] = [layer.to_json() for layer in layers]
    if subject is not None:
        doc["subject"] = subject.to_json()
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, separators=(",", ":")).encode()


def build_index(
    manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None
) -> bytes:
    """Serialise an OCI image index."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, separators=(",", ":")).encode()


def descriptor_for(data: bytes, media_type: str, **kwargs: Any) -> Descriptor:
    """The descriptor of ``data``."""
    return Descriptor(media_type=media_type, digest=sha256_digest(data), size=len(data), **kwargs)


__all__ = [
    "ANN_CORE_VERSION",
    "ANN_KIND",
    "ANN_LIB_VERSION",
    "ANN_SDK_VERSION",
    "ANN_TARGET_TRIPLE",
    "ANN_TITLE",
    "ANN_TYPE",
    "ANN_VERSION",
    "DIRECTORY_CONFIG",
    "DIRECTORY_LAYER",
    "DIRECTORY_REPOSITORY",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "PLUGIN_BINARY",
    "PLUGIN_CONFIG",
    "PLUGIN_LAYER_TYPES",
    "PLUGIN_METADATA",
    "SAFE_NAME_RE",
    "Descriptor",
    "Manifest",
    "PluginArtifactMetadata",
    "build_index",
    "build_manifest",
    "check_digest_syntax",
    "descriptor_for",
    "digest_matches",
    "new_hasher",
    "sha256_digest",
]
