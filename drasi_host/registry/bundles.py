"""Sigstore bundles, verified offline by sigstore-python.

sigstore-python's :class:`~sigstore.verify.Verifier`, built from a
``trusted_root.json`` file (never from TUF, so no network access), checks for
each bundle (v0.1 to v0.3):

* a verified signing time: a Rekor v1 signed entry timestamp (SET) or an RFC
  3161 timestamp from a timestamp authority of the trusted root (Rekor v2
  entries have only the latter);
* the certificate chain to a Fulcio CA of the trusted root, valid at that
  time (``cryptography.x509.verification``), its embedded SCTs against the
  root's CT logs, keyUsage digitalSignature and extendedKeyUsage codeSigning;
* the identity, through :class:`~drasi_host.registry.policy.IdentityPolicy`;
* the log entry: inclusion proof against its signed checkpoint, and the SET
  when there is one;
* the signature over the artifact digest (message signatures) or the DSSE
  envelope, and that the log entry records this very signature and content.

What sigstore-python leaves to its caller is done here: the digest binding of
a DSSE payload (an in-toto statement whose subject names the artifact's
``sha256``).  A message signature is verified against the artifact digest
itself, so its binding is part of sigstore-python's check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.x509 import InvalidVersion
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.trustroot import v1 as trustroot_v1

from drasi_host.errors import RegistryError
from drasi_host.registry.materials import (
    STAGE_BINDING,
    STAGE_IDENTITY,
    STAGE_PARSE,
    STAGE_TLOG,
    BundleMaterial,
    MaterialFailure,
    NoCertificate,
    SignatureStatus,
    VerificationResult,
)
from drasi_host.registry.policy import (
    IdentityPolicy,
    certificate_issuer,
    certificate_subject,
)

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# What a damaged bundle makes the parsers raise (a certificate whose version
# field was changed raises cryptography's InvalidVersion, not a ValueError).
_MALFORMED = (SigstoreError, ValueError, TypeError, KeyError, AttributeError, InvalidVersion)


def sigstore_verifier(trusted_root: Path | str | None) -> Verifier:
    """A sigstore-python verifier for ``trusted_root`` (a path; ``None`` is the
    bundled production root).  Reads the file only: no TUF, no network."""
    try:
        if trusted_root is None:
            data = (
                resources.files("drasi_host.registry.data")
                .joinpath("trusted_root.json")
                .read_bytes()
            )
        else:
            data = Path(trusted_root).read_bytes()
        return Verifier(trusted_root=TrustedRoot(trustroot_v1.TrustedRoot.from_json(data)))
    except OSError as exc:
        raise RegistryError(f"cannot read the trusted root {trusted_root}: {exc}") from exc
    except _MALFORMED as exc:
        raise RegistryError(f"invalid trusted root {trusted_root or '(bundled)'}: {exc}") from exc


def _document(material: BundleMaterial) -> Mapping[str, Any]:
    try:
        document = json.loads(material.bundle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MaterialFailure(STAGE_PARSE, "Sigstore bundle is not valid JSON") from exc
    if not isinstance(document, Mapping):
        raise MaterialFailure(STAGE_PARSE, "Sigstore bundle is not a JSON object")
    return document


def _label(document: Mapping[str, Any]) -> str:
    media_type = document.get("mediaType")
    for version in ("0.3", "0.2", "0.1"):
        if isinstance(media_type, str) and version in media_type:
            return f"Sigstore bundle v{version}"
    return "Sigstore bundle"


def in_toto_binding(payload_type: str, payload: bytes, digest_hex: str) -> str | None:
    """Why a DSSE payload does not name ``sha256:<digest_hex>`` (``None`` when it does)."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return f"DSSE payloadType {payload_type!r} is not an in-toto statement"
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "in-toto statement is not valid JSON"
    subjects = statement.get("subject") if isinstance(statement, Mapping) else None
    if not isinstance(subjects, list):
        return "in-toto statement has no subject list"
    named: list[str] = []
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, Mapping) else None
        value = digests.get("sha256") if isinstance(digests, Mapping) else None
        if isinstance(value, str):
            if value.lower() == digest_hex:
                return None
            named.append(value)
    if not named:
        return "in-toto statement has no sha256 subject digest"
    return f"in-toto statement subjects {named} do not include sha256:{digest_hex}"


def verify_bundle(
    material: BundleMaterial, digest_hex: str, verifier: Verifier, policy: IdentityPolicy
) -> VerificationResult:
    """Verify one bundle for the artifact ``sha256:<digest_hex>``.

    Returns a ``VERIFIED`` result or raises :class:`MaterialFailure`;
    :class:`NoCertificate` for a key-signed bundle (not keyless)."""
    document = _document(material)
    label = _label(document)
    material_section = document.get("verificationMaterial")
    if (
        isinstance(material_section, Mapping)
        and material_section.get("publicKey")
        and not (
            material_section.get("certificate") or material_section.get("x509CertificateChain")
        )
    ):
        raise NoCertificate
    try:
        bundle = Bundle.from_json(material.bundle)
        leaf = bundle.signing_certificate
        issuer, subject = certificate_issuer(leaf), certificate_subject(leaf)
    except _MALFORMED as exc:
        raise MaterialFailure(STAGE_PARSE, f"{label} is malformed: {exc}") from exc
    identity_problem = policy.problem(leaf)
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
            binding = in_toto_binding(payload_type, payload, digest_hex)
        else:
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest_hex))
            verifier.verify_artifact(hashed, bundle, policy)
            binding = None
    except _MALFORMED as exc:
        stage = STAGE_TLOG
        reason = str(exc) or type(exc).__name__
        if identity_problem is not None and reason == identity_problem:
            stage = STAGE_IDENTITY
        elif "message digest mismatch" in reason:
            stage, reason = (
                STAGE_BINDING,
                f"message signature is for another digest, not sha256:{digest_hex}",
            )
        # The signer is named only once the cryptography held (identity or
        # binding is what failed), as for every other material.
        named = stage in (STAGE_IDENTITY, STAGE_BINDING)
        raise MaterialFailure(
            stage,
            f"{label}: {reason}",
            issuer if named else None,
            subject if named else None,
        ) from exc
    if binding is not None:
        raise MaterialFailure(STAGE_BINDING, f"{label}: {binding}", issuer, subject)
    return VerificationResult(SignatureStatus.VERIFIED, issuer=issuer, subject=subject)


__all__ = ["IN_TOTO_PAYLOAD_TYPE", "in_toto_binding", "sigstore_verifier", "verify_bundle"]
