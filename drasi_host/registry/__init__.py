"""Drasi plugin registry: OCI client, signature verification, installer.

Layers, each importing only the ones before it:

* :mod:`.reference`, :mod:`.platform`, :mod:`.artifact`: references, platforms
  and tags, the artifact format;
* :mod:`.distribution`: the async registry client (read, stream, publish;
  typed errors, retries); it knows nothing of signatures;
* :mod:`.signatures`: signature discovery on top of the client (referrers
  API, ``sha256-<hex>`` index, ``.sig`` tag);
* :mod:`.materials`, :mod:`.policy`, :mod:`.trust`, :mod:`.bundles`
  (sigstore-python), :mod:`.simplesigning` and :mod:`.verification`: offline
  verification, no network;
* :mod:`.cosign`: ``CosignVerifier`` (discovery + offline verification);
* :mod:`.pull`: the one download path (resolve → discover → verify → stream
  → write) and :mod:`.oci`: ``OciRegistryClient`` with ``download_plugin``;
* :mod:`.resolver`, :mod:`.fetcher`, :mod:`.installer` (lockfile-recording
  installs) and :mod:`.cli` (the ``drasi-host`` registry commands).
"""

from drasi_host.errors import (
    IntegrityError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryTransportError,
    SignatureVerificationError,
)
from drasi_host.lockfile import IntegrityStatus, LockEntry, PluginLockfile
from drasi_host.registry.artifact import Descriptor, Manifest, PluginArtifactMetadata
from drasi_host.registry.cosign import CosignVerifier
from drasi_host.registry.distribution import DistributionClient
from drasi_host.registry.fetcher import FetchResult, SourceType, fetch_plugin
from drasi_host.registry.installer import PluginInstaller
from drasi_host.registry.materials import (
    BundleMaterial,
    SignatureMaterial,
    SignatureStatus,
    SimpleSigningMaterial,
    VerificationResult,
)
from drasi_host.registry.oci import (
    DownloadResult,
    OciRegistryClient,
    PluginSearchResult,
    PluginVersion,
    ProgressCallback,
    RegistryAuth,
    RegistryConfig,
)
from drasi_host.registry.platform import (
    Platform,
    platform_to_triple,
    strip_arch_suffix,
    tag_suffix,
    tag_suffixes,
    triple_to_platform,
)
from drasi_host.registry.policy import IdentityPolicy, TrustedIdentity
from drasi_host.registry.pull import pull_plugin
from drasi_host.registry.reference import DEFAULT_REGISTRY, PluginReference
from drasi_host.registry.resolver import HostVersionInfo, PluginResolver, ResolvedPlugin
from drasi_host.registry.signatures import fetch_signature_materials
from drasi_host.registry.verification import OfflineVerifier, VerificationConfig

__all__ = [
    "DEFAULT_REGISTRY",
    "BundleMaterial",
    "CosignVerifier",
    "Descriptor",
    "DistributionClient",
    "DownloadResult",
    "FetchResult",
    "HostVersionInfo",
    "IdentityPolicy",
    "IntegrityError",
    "IntegrityStatus",
    "LockEntry",
    "Manifest",
    "OciRegistryClient",
    "OfflineVerifier",
    "Platform",
    "PluginArtifactMetadata",
    "PluginInstaller",
    "PluginLockfile",
    "PluginReference",
    "PluginResolver",
    "PluginSearchResult",
    "PluginVersion",
    "ProgressCallback",
    "RegistryAuth",
    "RegistryAuthError",
    "RegistryConfig",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryTransportError",
    "ResolvedPlugin",
    "SignatureMaterial",
    "SignatureStatus",
    "SignatureVerificationError",
    "SimpleSigningMaterial",
    "SourceType",
    "TrustedIdentity",
    "VerificationConfig",
    "VerificationResult",
    "fetch_plugin",
    "fetch_signature_materials",
    "platform_to_triple",
    "pull_plugin",
    "strip_arch_suffix",
    "tag_suffix",
    "tag_suffixes",
    "triple_to_platform",
]
