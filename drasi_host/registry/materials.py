"""What signature verification works on and what it returns (plain data).

Discovery (:mod:`.signatures`) produces :class:`SimpleSigningMaterial` and
:class:`BundleMaterial`; the offline checks (:mod:`.simplesigning`,
:mod:`.bundles`, tied together by :mod:`.verification`) turn them into a
:class:`VerificationResult`.  Nothing here does I/O or cryptography.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeAlias

import attrs


class SignatureStatus(enum.Enum):
    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    INVALID = "invalid"


@attrs.frozen
class VerificationResult:
    """The outcome for one artifact.  ``issuer``/``subject`` are the signer's
    identity when the signature itself checked out (also when that identity is
    not trusted); ``reason`` says why the result is not ``VERIFIED``."""

    status: SignatureStatus
    issuer: str | None = None
    subject: str | None = None
    reason: str | None = None

    @property
    def verified(self) -> bool:
        return self.status is SignatureStatus.VERIFIED


@attrs.frozen
class SimpleSigningMaterial:
    """A classic cosign signature layer: its blob and its annotations."""

    payload: bytes
    annotations: Mapping[str, str]


@attrs.frozen
class BundleMaterial:
    """A Sigstore bundle (JSON bytes) attached to the artifact."""

    bundle: bytes


SignatureMaterial: TypeAlias = SimpleSigningMaterial | BundleMaterial

# How far a material got before it failed; the furthest failure is reported.
STAGE_PARSE, STAGE_SIGNATURE, STAGE_TLOG, STAGE_CHAIN, STAGE_BINDING, STAGE_IDENTITY = range(6)


class MaterialFailure(Exception):
    """One material failed; ``stage`` ranks how far it got (higher = more
    informative); ``issuer``/``subject`` are set once the certificate was read."""

    def __init__(
        self, stage: int, reason: str, issuer: str | None = None, subject: str | None = None
    ) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.issuer = issuer
        self.subject = subject


class NoCertificate(Exception):
    """The material is not keyless (no certificate): it counts as absent."""


__all__ = [
    "STAGE_BINDING",
    "STAGE_CHAIN",
    "STAGE_IDENTITY",
    "STAGE_PARSE",
    "STAGE_SIGNATURE",
    "STAGE_TLOG",
    "BundleMaterial",
    "MaterialFailure",
    "NoCertificate",
    "SignatureMaterial",
    "SignatureStatus",
    "SimpleSigningMaterial",
    "VerificationResult",
]
