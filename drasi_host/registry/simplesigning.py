"""Classic cosign signatures (simplesigning layers, tag ``sha256-<hex>.sig``), offline.

sigstore-python cannot verify an entry that has only a Rekor signed entry
timestamp (SET) and no inclusion proof through its public API, and that is
what cosign writes into the ``dev.sigstore.cosign/bundle`` annotation, so this
one format is checked here.  A layer passes when:

1. its signature verifies over the exact layer bytes with the leaf
   certificate's key (ECDSA P-256/P-384, RSA or Ed25519);
2. its Rekor bundle's SET verifies under a Rekor key of the trusted root
   (canonical JSON of body, integratedTime, logID, logIndex), its time lies in
   that log's validity period and not in the future, and the logged
   ``hashedrekord``/``rekord`` entry records this signature, this certificate
   and the hash of the layer.  ``integratedTime`` is the signing time;
3. the leaf chains to a Fulcio CA of the trusted root valid at that time,
   checked by ``cryptography.x509.verification`` (a client verifier with the
   Web PKI extension policies, extendedKeyUsage left to step 4); certificates
   shipped in the annotations are untrusted intermediates, never anchors;
4. the leaf carries keyUsage digitalSignature and extendedKeyUsage codeSigning;
5. the payload's ``docker-manifest-digest`` is the artifact (digest binding);
6. the identity policy accepts the certificate.

A layer without a certificate (``cosign sign --key``) is not keyless and
raises :class:`~drasi_host.registry.materials.NoCertificate`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from drasi_host.registry.materials import (
    STAGE_BINDING,
    STAGE_CHAIN,
    STAGE_IDENTITY,
    STAGE_PARSE,
    STAGE_SIGNATURE,
    STAGE_TLOG,
    MaterialFailure,
    NoCertificate,
    SignatureStatus,
    SimpleSigningMaterial,
    VerificationResult,
)
from drasi_host.registry.policy import IdentityPolicy, certificate_issuer, certificate_subject
from drasi_host.registry.trust import TrustedRoot

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CERTIFICATE_LEGACY = "dev.cosignproject.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"

SIMPLESIGNING_TYPE = "cosign container image signature"
# containers/image stores simplesigning payloads behind this prefix; the JSON
# after it is what the digest binding reads.
SIGSTORE_JSON_PREFIX = b"\x00sigstore-json\n"
# Rekor integrated times more than this far ahead of the local clock are rejected.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_LABEL = "simplesigning layer"
# cryptography decodes certificate fields lazily: a broken extension or key
# surfaces only when it is read.
MALFORMED = (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension)


def _fail(stage: int, reason: str) -> MaterialFailure:
    return MaterialFailure(stage, f"{_LABEL}: {reason}")


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(STAGE_PARSE, f"{what} is missing or not a string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(STAGE_PARSE, f"{what} is not valid base64") from exc


def _json_object(data: bytes | str, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(STAGE_PARSE, f"{what} is not valid JSON") from exc
    if not isinstance(value, Mapping):
        raise _fail(STAGE_PARSE, f"{what} is not a JSON object")
    return value


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(STAGE_PARSE, f"{what} is not an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise _fail(STAGE_PARSE, f"{what} is not an integer") from exc


def _pem_certificates(text: Any, what: str) -> list[x509.Certificate]:
    if not isinstance(text, str) or not text.strip():
        raise _fail(STAGE_PARSE, f"{what} is empty")
    try:
        return x509.load_pem_x509_certificates(text.encode("utf-8"))
    except ValueError as exc:
        raise _fail(STAGE_PARSE, f"{what} is not a PEM certificate") from exc


def _payload_json(payload: bytes) -> bytes:
    return (
        payload[len(SIGSTORE_JSON_PREFIX) :]
        if payload.startswith(SIGSTORE_JSON_PREFIX)
        else payload
    )


# -- signature -------------------------------------------------------------------------


def _ecdsa_hashes(curve: ec.EllipticCurve) -> list[hashes.HashAlgorithm]:
    """Hashes to try for an ECDSA key: the curve's own size first, then SHA-256."""
    own: dict[str, hashes.HashAlgorithm] = {
        "secp384r1": hashes.SHA384(),
        "secp521r1": hashes.SHA512(),
    }
    return [own[curve.name], hashes.SHA256()] if curve.name in own else [hashes.SHA256()]


def verify_with_key(key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies under ``key``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            for algorithm in _ecdsa_hashes(key.curve):
                try:
                    key.verify(signature, data, ec.ECDSA(algorithm))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            for scheme in (padding.PKCS1v15(), pss):
                try:
                    key.verify(signature, data, scheme, hashes.SHA256())
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return False


# -- transparency log (SET) ---------------------------------------------------------------


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _same_certificate(pem_b64: Any, leaf: x509.Certificate) -> bool:
    """Whether a logged ``publicKey`` (base64 of PEM) is the leaf certificate,
    or the leaf's public key."""
    if not isinstance(pem_b64, str):
        return False
    try:
        pem = base64.b64decode(pem_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    if b"CERTIFICATE" in pem:
        try:
            return any(
                cert.public_bytes(serialization.Encoding.DER) == leaf_der
                for cert in x509.load_pem_x509_certificates(pem)
            )
        except ValueError:
            return False
    try:
        logged_key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return logged_key.public_bytes(
        serialization.Encoding.DER, spki
    ) == leaf.public_key().public_bytes(serialization.Encoding.DER, spki)


def _entry_mismatch(
    body: Mapping[str, Any], leaf: x509.Certificate, signature: bytes, payload: bytes
) -> str | None:
    """Why the logged entry is not this signature (``None`` if it is)."""
    kind = body.get("kind")
    if kind not in ("hashedrekord", "rekord"):
        return f"log entry kind {kind!r} cannot record a simplesigning signature"
    spec = body.get("spec")
    hash_info = _get(spec, "data", "hash")
    if (
        _get(hash_info, "algorithm") != "sha256"
        or _get(hash_info, "value") != hashlib.sha256(payload).hexdigest()
    ):
        return "log entry records a different content hash"
    logged = _get(spec, "signature", "content")
    try:
        same_signature = isinstance(logged, str) and base64.b64decode(logged) == signature
    except (binascii.Error, ValueError):
        same_signature = False
    if not same_signature:
        return "log entry records a different signature"
    if not _same_certificate(_get(spec, "signature", "publicKey", "content"), leaf):
        return "log entry records a different certificate"
    return None


def _signing_time(
    annotations: Mapping[str, str],
    leaf: x509.Certificate,
    signature: bytes,
    payload: bytes,
    root: TrustedRoot,
) -> dt.datetime:
    """Check the Rekor bundle annotation; return its integrated time."""
    if not annotations.get(ANNOTATION_BUNDLE):
        raise _fail(STAGE_TLOG, "no trusted signing time (no transparency log entry)")
    bundle = _json_object(annotations[ANNOTATION_BUNDLE], "Rekor bundle")
    body = _get(bundle, "Payload", "body")
    if not isinstance(body, str):
        raise _fail(STAGE_PARSE, "Rekor bundle has no Payload.body")
    log_id_hex = _get(bundle, "Payload", "logID")
    try:
        log_id = bytes.fromhex(log_id_hex) if isinstance(log_id_hex, str) else b""
    except ValueError as exc:
        raise _fail(STAGE_PARSE, "Rekor bundle logID is not hex") from exc
    integrated_time = _int(_get(bundle, "Payload", "integratedTime"), "integratedTime")
    log_index = _int(_get(bundle, "Payload", "logIndex"), "logIndex")
    set_value = bundle.get("SignedEntryTimestamp")
    if not set_value:
        raise _fail(STAGE_TLOG, "log entry has no signed entry timestamp")
    signed_entry_timestamp = _b64decode(set_value, "SignedEntryTimestamp")
    log = root.tlog(log_id)
    if log is None:
        raise _fail(
            STAGE_TLOG,
            f"transparency log {log_id.hex()} is not in the trusted root ({root.source})",
        )
    if log.public_key is None:
        raise _fail(STAGE_TLOG, f"transparency log {log_id.hex()} has an unsupported key")
    signed = _canonical_json(
        {
            "body": body,
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        }
    )
    if not verify_with_key(log.public_key, signed_entry_timestamp, signed):
        raise _fail(STAGE_TLOG, "signed entry timestamp does not verify with the log's key")
    try:
        when = dt.datetime.fromtimestamp(integrated_time, dt.timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise _fail(STAGE_PARSE, "integratedTime is out of range") from exc
    if not log.valid_for.contains(when):
        raise _fail(STAGE_TLOG, f"log entry time {when.isoformat()} is outside the log's validity")
    if when > dt.datetime.now(dt.timezone.utc) + _CLOCK_SKEW:
        raise _fail(STAGE_TLOG, f"log entry integrated time {when.isoformat()} is in the future")
    entry = _json_object(_b64decode(body, "log entry body"), "log entry body")
    mismatch = _entry_mismatch(entry, leaf, signature, payload)
    if mismatch is not None:
        raise _fail(STAGE_TLOG, f"log entry mismatch: {mismatch}")
    return when


# -- certificate chain ------------------------------------------------------------------------


def check_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    root: TrustedRoot,
    when: dt.datetime,
) -> None:
    """Path from ``leaf`` through untrusted ``intermediates`` to a certificate
    of a Fulcio CA of ``root`` valid at ``when``, with the leaf's code-signing
    usage.  Raises :class:`MaterialFailure` (stage chain)."""
    anchors = [
        cert
        for authority in root.certificate_authorities
        if authority.valid_for.contains(when)
        for cert in authority.certificates
    ]
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise _fail(
            STAGE_CHAIN,
            f"certificate was not valid at signing time {when.isoformat()} (valid "
            f"{leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()})",
        )
    where = f"a Fulcio CA of the trusted root ({root.source}) valid at {when.isoformat()}"
    if not anchors:
        raise _fail(STAGE_CHAIN, f"certificate does not chain to {where}: there is none")
    # Fulcio leaves carry codeSigning, not the clientAuth a client verifier
    # expects: the EKU is left to the explicit check below.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except (VerificationError, ValueError) as exc:
        raise _fail(STAGE_CHAIN, f"certificate does not chain to {where}: {exc}") from exc
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise _fail(STAGE_CHAIN, "certificate lacks keyUsage or extendedKeyUsage") from exc
    if not usage.digital_signature:
        raise _fail(STAGE_CHAIN, "certificate key usage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise _fail(STAGE_CHAIN, "certificate extended key usage lacks codeSigning")


# -- binding and the whole check -----------------------------------------------------------------


def binding_problem(payload: bytes, digest_hex: str) -> str | None:
    """Why the payload does not name ``sha256:<digest_hex>`` (``None`` if it does)."""
    try:
        document = json.loads(_payload_json(payload))
    except (ValueError, UnicodeDecodeError):
        return "simplesigning payload is not valid JSON"
    kind = _get(document, "critical", "type")
    if not isinstance(kind, str) or kind.lower() != SIMPLESIGNING_TYPE:
        return f"simplesigning payload has critical.type {kind!r}"
    signed = _get(document, "critical", "image", "docker-manifest-digest")
    if signed != f"sha256:{digest_hex}":
        return (
            f"signature is for {signed!r}, not for sha256:{digest_hex} "
            "(docker-manifest-digest mismatch)"
        )
    return None


def _strip_reference(reference: str) -> str:
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def reference_problem(payload: bytes, docker_reference: str) -> str | None:
    """Why the payload's ``docker-reference`` is not the repository of
    ``docker_reference`` (tags and digests ignored)."""
    try:
        signed = _get(
            json.loads(_payload_json(payload)), "critical", "identity", "docker-reference"
        )
    except (ValueError, UnicodeDecodeError):
        signed = None
    if isinstance(signed, str) and _strip_reference(signed) == _strip_reference(docker_reference):
        return None
    return f"signature names docker-reference {signed!r}, not {docker_reference!r}"


def verify_simplesigning(
    material: SimpleSigningMaterial, digest_hex: str, root: TrustedRoot, policy: IdentityPolicy
) -> VerificationResult:
    """Verify one layer for the artifact ``sha256:<digest_hex>``.

    Returns a ``VERIFIED`` result or raises :class:`MaterialFailure`
    (:class:`NoCertificate` for a key-signed layer)."""
    annotations = material.annotations
    pem = annotations.get(ANNOTATION_CERTIFICATE) or annotations.get(ANNOTATION_CERTIFICATE_LEGACY)
    if not pem:
        raise NoCertificate
    leaf, *intermediates = _pem_certificates(pem, "certificate")
    if annotations.get(ANNOTATION_CHAIN):
        intermediates += _pem_certificates(annotations[ANNOTATION_CHAIN], "chain")
    if ANNOTATION_SIGNATURE not in annotations:
        raise _fail(STAGE_PARSE, f"no {ANNOTATION_SIGNATURE} annotation")
    signature = _b64decode(annotations[ANNOTATION_SIGNATURE], "signature")
    if not verify_with_key(leaf.public_key(), signature, material.payload):
        raise _fail(
            STAGE_SIGNATURE, "signature does not verify over the signed content with its key"
        )
    try:
        when = _signing_time(annotations, leaf, signature, material.payload, root)
    except MaterialFailure as failure:
        if ANNOTATION_BUNDLE not in annotations:
            # No signing time at all: still report a certificate that could
            # never chain, as that is the root cause.
            try:
                check_chain(leaf, intermediates, root, leaf.not_valid_before_utc)
            except MaterialFailure as chain_failure:
                raise MaterialFailure(
                    failure.stage, f"{chain_failure.reason}; also {failure.reason}"
                ) from None
        raise
    check_chain(leaf, intermediates, root, when)
    binding = binding_problem(material.payload, digest_hex)
    if binding is not None:
        raise _fail(STAGE_BINDING, binding)
    issuer, subject = certificate_issuer(leaf), certificate_subject(leaf)
    problem = policy.problem(leaf)
    if problem is not None:
        raise MaterialFailure(STAGE_IDENTITY, f"{_LABEL}: {problem}", issuer, subject)
    return VerificationResult(SignatureStatus.VERIFIED, issuer=issuer, subject=subject)


__all__ = [
    "ANNOTATION_BUNDLE",
    "ANNOTATION_CERTIFICATE",
    "ANNOTATION_CERTIFICATE_LEGACY",
    "ANNOTATION_CHAIN",
    "ANNOTATION_SIGNATURE",
    "MALFORMED",
    "SIMPLESIGNING_TYPE",
    "binding_problem",
    "check_chain",
    "reference_problem",
    "verify_simplesigning",
    "verify_with_key",
]
