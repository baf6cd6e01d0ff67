"""Offline signature verification of plugin artifacts (no I/O beyond reading
the trusted root once).

An artifact (an OCI manifest digest ``sha256:<hex>``) is ``VERIFIED`` when
at least one piece of its signature material passes every check: Sigstore
bundles by sigstore-python (:mod:`.bundles`), classic cosign simplesigning
layers by :mod:`.simplesigning`; both end with the identity policy
(:mod:`.policy`).  Material without a certificate (key-signed) counts as
absent, so an artifact signed only that way is ``UNSIGNED``.  Everything
malformed yields ``INVALID`` with the most informative reason; verifying
material never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from sigstore.verify import Verifier

from drasi_host.registry.bundles import sigstore_verifier, verify_bundle
from drasi_host.registry.materials import (
    STAGE_BINDING,
    STAGE_PARSE,
    BundleMaterial,
    MaterialFailure,
    NoCertificate,
    SignatureMaterial,
    SignatureStatus,
    SimpleSigningMaterial,
    VerificationResult,
)
from drasi_host.registry.policy import DEFAULT_TRUSTED_IDENTITIES, IdentityPolicy, TrustedIdentity
from drasi_host.registry.simplesigning import MALFORMED, reference_problem, verify_simplesigning
from drasi_host.registry.trust import TrustedRoot, load_trusted_root

_DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})")


def _identities(value: Iterable[TrustedIdentity]) -> tuple[TrustedIdentity, ...]:
    return tuple(value)


@attrs.frozen
class VerificationConfig:
    """``trusted_identities`` empty means :data:`DEFAULT_TRUSTED_IDENTITIES`;
    ``trusted_root`` ``None`` means the bundled Sigstore production root."""

    enabled: bool = True
    trusted_identities: Sequence[TrustedIdentity] = attrs.field(default=(), converter=_identities)
    trusted_root: Path | str | None = None

    @property
    def effective_identities(self) -> tuple[TrustedIdentity, ...]:
        return tuple(self.trusted_identities) or DEFAULT_TRUSTED_IDENTITIES


class OfflineVerifier:
    """Verifies signature materials under a :class:`VerificationConfig`.

    The trusted root is read when verification is enabled (a bad path fails
    here, early), else on first use."""

    def __init__(self, config: VerificationConfig) -> None:
        self.config = config
        self.policy = IdentityPolicy(config.effective_identities)
        self._root: TrustedRoot | None = None
        self._sigstore: Verifier | None = None
        if config.enabled:
            self._load()

    def _load(self) -> tuple[TrustedRoot, Verifier]:
        if self._root is None or self._sigstore is None:
            self._root = load_trusted_root(self.config.trusted_root)
            self._sigstore = sigstore_verifier(self.config.trusted_root)
        return self._root, self._sigstore

    @property
    def trusted_root(self) -> TrustedRoot:
        return self._load()[0]

    def verify_materials(
        self,
        materials: Sequence[SignatureMaterial],
        digest: str,
        *,
        docker_reference: str | None = None,
    ) -> VerificationResult:
        """Verify ``materials`` found for the artifact ``digest``.

        ``docker_reference``, when given, must also equal the repository a
        simplesigning payload names (tags and digests ignored)."""
        match = _DIGEST_RE.fullmatch(digest)
        if match is None:
            return VerificationResult(
                SignatureStatus.INVALID, reason=f"unsupported artifact digest {digest!r}"
            )
        if not materials:
            return VerificationResult(
                SignatureStatus.UNSIGNED, reason=f"no signatures found for {digest}"
            )
        digest_hex = match.group(1)
        root, sigstore = self._load()
        failures: list[MaterialFailure] = []
        keyless = 0
        for material in materials:
            try:
                if isinstance(material, BundleMaterial):
                    result = verify_bundle(material, digest_hex, sigstore, self.policy)
                else:
                    result = verify_simplesigning(material, digest_hex, root, self.policy)
            except NoCertificate:
                continue
            except MaterialFailure as failure:
                keyless += 1
                failures.append(failure)
                continue
            except MALFORMED as exc:
                keyless += 1
                failures.append(
                    MaterialFailure(STAGE_PARSE, f"malformed certificate or key: {exc}")
                )
                continue
            keyless += 1
            problem = None
            if docker_reference is not None and isinstance(material, SimpleSigningMaterial):
                problem = reference_problem(material.payload, docker_reference)
            if problem is None:
                return result
            failures.append(MaterialFailure(STAGE_BINDING, problem))
        if keyless == 0:
            return VerificationResult(
                SignatureStatus.UNSIGNED,
                reason=(
                    f"no keyless signature for {digest}: {len(materials)} signature(s) "
                    "found, none carries a certificate"
                ),
            )
        best = max(failures, key=lambda failure: failure.stage)
        reason = best.reason
        others = [failure.reason for failure in failures if failure is not best]
        if others:
            reason += f" (other signatures: {'; '.join(others)})"
        return VerificationResult(
            SignatureStatus.INVALID, issuer=best.issuer, subject=best.subject, reason=reason
        )


__all__ = ["OfflineVerifier", "VerificationConfig"]
