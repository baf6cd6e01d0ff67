"""``CosignVerifier``: signature discovery in a registry plus offline verification.

The two halves stay apart: :func:`~drasi_host.registry.signatures.fetch_signature_materials`
finds the materials through a registry client, and
:meth:`~drasi_host.registry.verification.OfflineVerifier.verify_materials`
checks them without any I/O.  This class only joins them for
``verify_plugin(ref, digest)``.
"""

from __future__ import annotations

from drasi_host.errors import RegistryError
from drasi_host.registry.distribution import DistributionClient
from drasi_host.registry.materials import (
    BundleMaterial,
    SignatureMaterial,
    SignatureStatus,
    SimpleSigningMaterial,
    VerificationResult,
)
from drasi_host.registry.policy import (
    DEFAULT_TRUSTED_IDENTITIES,
    TrustedIdentity,
    certificate_issuer,
    certificate_subject,
    glob_match,
)
from drasi_host.registry.reference import PluginReference, as_reference
from drasi_host.registry.signatures import fetch_signature_materials
from drasi_host.registry.verification import OfflineVerifier, VerificationConfig


class CosignVerifier(OfflineVerifier):
    """Keyless cosign / Sigstore verification under a :class:`VerificationConfig`.

    ``client`` (or the client this verifier is given to, see :meth:`bind`) is
    used by :meth:`verify_plugin` to find the signatures."""

    def __init__(
        self, config: VerificationConfig, client: DistributionClient | None = None
    ) -> None:
        super().__init__(config)
        self._client = client

    def bind(self, client: DistributionClient) -> None:
        """Use ``client`` for registry requests unless one is already set."""
        if self._client is None:
            self._client = client

    async def verify_plugin(
        self, ref: str | PluginReference, digest: str | None = None
    ) -> VerificationResult:
        """Find the signatures of ``ref`` (at ``digest``, else its current
        digest) in its registry and verify them."""
        if not self.config.enabled:
            return VerificationResult(SignatureStatus.UNSIGNED, reason="verification disabled")
        client = self._client
        if client is None:
            raise RegistryError(
                f"{ref}: cannot verify signatures: the verifier has no registry client",
                reference=str(ref),
            )
        reference = as_reference(ref, client.config.default_registry)
        if digest is None:
            digest = await client.get_digest(reference)
        materials = await fetch_signature_materials(client, reference, digest)
        return self.verify_materials(materials, digest)


__all__ = [
    "DEFAULT_TRUSTED_IDENTITIES",
    "BundleMaterial",
    "CosignVerifier",
    "SignatureMaterial",
    "SignatureStatus",
    "SimpleSigningMaterial",
    "TrustedIdentity",
    "VerificationConfig",
    "VerificationResult",
    "certificate_issuer",
    "certificate_subject",
    "glob_match",
]
