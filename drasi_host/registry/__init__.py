"""Drasi plugin registry: OCI client, cosign verification, resolver and fetcher.

* :mod:`.reference`: parsing plugin references;
* :mod:`.platform`: target triples, OCI platforms, tag suffixes, file names;
* :mod:`.artifact`: the plugin artifact format and OCI documents;
* :mod:`.oci`: the async registry client (read, download, publish);
* :mod:`.signatures`: where signatures are found; :mod:`.cosign` and
  :mod:`.trust`: how they are verified;
* :mod:`.resolver`: choosing the artifact that fits this host;
* :mod:`.fetcher`: fetching from ``file://``, ``http(s)://`` or OCI;
* :mod:`.cli`: the ``pull``, ``verify`` and ``search`` commands.
"""

from drasi_host.errors import RegistryError, SignatureVerificationError
from drasi_host.registry.artifact import Descriptor, Manifest, PluginArtifactMetadata
from drasi_host.registry.cosign import (
    BundleMaterial,
    CosignVerifier,
    SignatureStatus,
    SimpleSigningMaterial,
    TrustedIdentity,
    VerificationConfig,
    VerificationResult,
)
from drasi_host.registry.fetcher import FetchResult, SourceType, fetch_plugin
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
from drasi_host.registry.reference import DEFAULT_REGISTRY, PluginReference
from drasi_host.registry.resolver import HostVersionInfo, PluginResolver, ResolvedPlugin
from drasi_host.registry.signatures import fetch_signature_materials

__all__ = [
    "DEFAULT_REGISTRY",
    "BundleMaterial",
    "CosignVerifier",
    "Descriptor",
    "DownloadResult",
    "FetchResult",
    "HostVersionInfo",
    "Manifest",
    "OciRegistryClient",
    "Platform",
    "PluginArtifactMetadata",
    "PluginReference",
    "PluginResolver",
    "PluginSearchResult",
    "PluginVersion",
    "ProgressCallback",
    "RegistryAuth",
    "RegistryConfig",
    "RegistryError",
    "ResolvedPlugin",
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
    "strip_arch_suffix",
    "tag_suffix",
    "tag_suffixes",
    "triple_to_platform",
]
