"""Keyless cosign / Sigstore signature verification for plugin artifacts.

A plugin artifact (an OCI manifest digest ``sha256:<hex>``) is *verified* only
when at least one piece of signature material passes every check:

1. the signature verifies over the right bytes with the leaf certificate's key
   (ECDSA P-256/P-384, RSA or Ed25519): the exact simplesigning layer bytes, the
   DSSE pre-authentication encoding of a bundle's envelope, or, for a bundle's
   ``messageSignature``, the artifact digest itself (prehashed SHA-256);
2. a transparency-log entry vouches for it: its signed entry timestamp (SET)
   verifies under a Rekor key of the trusted root, its time lies in that log's
   validity period, and the logged entry (``hashedrekord``, ``rekord``,
   ``dsse`` or ``intoto``) records this signature, this certificate and the
   hash of the signed content.  Its ``integratedTime`` is the signing time;
3. the leaf chains to a Fulcio CA of the trusted root that was valid at the
   signing time; every certificate on the path was valid then, CAs carry
   basicConstraints (and keyCertSign when they carry a key usage), the leaf
   carries digitalSignature and codeSigning.  Certificates shipped with the
   signature are only ever used as untrusted intermediates, never as anchors;
4. the signed content names the artifact (digest binding): the
   simplesigning ``docker-manifest-digest``, an in-toto statement subject's
   ``sha256``, or the bundle's ``messageDigest``;
5. the certificate's OIDC issuer and subject match a configured
   :class:`TrustedIdentity` (by default drasi-project's GitHub Actions).

Any passing material wins.  Material without a certificate (key-signed
cosign signatures) is not keyless and counts as absent, so an artifact signed
only that way is ``UNSIGNED``.  Everything malformed yields ``INVALID`` with a
reason; verification of material never raises.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID

from drasi_host.errors import RegistryError
from drasi_host.registry.trust import TransparencyLog, TrustedRoot, load_trusted_root

if TYPE_CHECKING:
    from drasi_host.registry.oci import OciRegistryClient
    from drasi_host.registry.reference import PluginReference

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CERTIFICATE_LEGACY = "dev.cosignproject.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"

SIMPLESIGNING_TYPE = "cosign container image signature"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# containers/image stores simplesigning payloads behind this prefix; the JSON
# after it is what the digest binding reads.
_SIGSTORE_JSON_PREFIX = b"\x00sigstore-json\n"

_BUNDLE_MEDIA_TYPE_RE = re.compile(
    r"application/vnd\.dev\.sigstore\.bundle(?:\+json;version=(0\.[123])|\.v(0\.[123])\+json)"
)
_DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})")
# Rekor integrated times more than this far ahead of the local clock are rejected.
_CLOCK_SKEW = dt.timedelta(minutes=5)


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


def glob_match(pattern: str, text: str) -> bool:
    """Match ``text`` against ``pattern`` where only ``*`` is special: it
    stands for any run of characters, ``/`` included.  A lone ``*`` matches
    everything; a pattern without ``*`` means equality."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == text
    head, *middle, tail = parts
    if len(text) < len(head) + len(tail):
        return False
    if not (text.startswith(head) and text.endswith(tail)):
        return False
    position, end = len(head), len(text) - len(tail)
    for part in middle:
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


@attrs.frozen
class TrustedIdentity:
    """An OIDC issuer (exact) and a subject glob (see :func:`glob_match`)."""

    issuer: str
    subject_pattern: str

    def matches(self, issuer: str, subject: str) -> bool:
        return issuer == self.issuer and glob_match(self.subject_pattern, subject)


DEFAULT_TRUSTED_IDENTITIES = (
    TrustedIdentity(
        "https://token.actions.githubusercontent.com", "https://github.com/drasi-project/*"
    ),
)


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


# -- internal model ----------------------------------------------------------------


class _Failure(Exception):
    """One material failed; ``stage`` ranks how far it got (higher = more
    informative)."""

    def __init__(
        self, stage: int, reason: str, issuer: str | None = None, subject: str | None = None
    ) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.issuer = issuer
        self.subject = subject


class _NoCertificate(Exception):
    """The material is not keyless (no certificate)."""


_PARSE, _SIGNATURE, _TLOG, _CHAIN, _BINDING, _IDENTITY = range(6)
_MALFORMED = (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension)


@attrs.frozen
class _LogEntry:
    body: str  # base64 canonicalized body, as logged
    integrated_time: int
    log_index: int
    log_id: bytes
    signed_entry_timestamp: bytes | None
    kind: str | None = None


@attrs.frozen
class _Parsed:
    """Material reduced to what the checks need."""

    label: str
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    signature: bytes
    signed_bytes: bytes  # message bytes, or the digest when prehashed
    prehashed: bool
    entries: tuple[_LogEntry, ...]
    entry_kinds: frozenset[str]
    content_hash: str  # sha256 hex that a hashedrekord/rekord entry records
    dsse_payload: bytes | None  # what a dsse/intoto entry's payloadHash covers
    check_binding: Callable[[str], str | None]  # digest hex -> failure reason


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Failure(_PARSE, f"{what} is missing or not a string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Failure(_PARSE, f"{what} is not valid base64") from exc


def _json_object(data: bytes | str, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Failure(_PARSE, f"{what} is not valid JSON") from exc
    if not isinstance(value, Mapping):
        raise _Failure(_PARSE, f"{what} is not a JSON object")
    return value


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise _Failure(_PARSE, f"{what} is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _Failure(_PARSE, f"{what} is not an integer") from exc


def _load_pem_certificates(text: Any, what: str) -> list[x509.Certificate]:
    if not isinstance(text, str) or not text.strip():
        raise _Failure(_PARSE, f"{what} is empty")
    try:
        return x509.load_pem_x509_certificates(text.encode("utf-8"))
    except ValueError as exc:
        raise _Failure(_PARSE, f"{what} is not a PEM certificate") from exc


def _load_der_certificate(value: Any, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(_b64decode(value, what))
    except ValueError as exc:
        raise _Failure(_PARSE, f"{what} is not a DER certificate") from exc


# -- parsing the two material kinds --------------------------------------------------


def _simplesigning_binding(payload: bytes) -> Callable[[str], str | None]:
    def check(digest_hex: str) -> str | None:
        text = payload
        if text.startswith(_SIGSTORE_JSON_PREFIX):
            text = text[len(_SIGSTORE_JSON_PREFIX) :]
        try:
            document = _json_object(text, "simplesigning payload")
        except _Failure as failure:
            return failure.reason
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

    return check


def _parse_simplesigning(material: SimpleSigningMaterial) -> _Parsed:
    annotations = material.annotations
    pem = annotations.get(ANNOTATION_CERTIFICATE) or annotations.get(ANNOTATION_CERTIFICATE_LEGACY)
    if not pem:
        raise _NoCertificate
    label = "simplesigning layer"
    leaf, *extra = _load_pem_certificates(pem, f"{label} certificate")
    intermediates = list(extra)
    if annotations.get(ANNOTATION_CHAIN):
        intermediates += _load_pem_certificates(annotations[ANNOTATION_CHAIN], f"{label} chain")
    if ANNOTATION_SIGNATURE not in annotations:
        raise _Failure(_PARSE, f"{label} has no {ANNOTATION_SIGNATURE} annotation")
    signature = _b64decode(annotations[ANNOTATION_SIGNATURE], f"{label} signature")
    entries: list[_LogEntry] = []
    if annotations.get(ANNOTATION_BUNDLE):
        bundle = _json_object(annotations[ANNOTATION_BUNDLE], f"{label} Rekor bundle")
        body = _get(bundle, "Payload", "body")
        if not isinstance(body, str):
            raise _Failure(_PARSE, f"{label} Rekor bundle has no Payload.body")
        log_id_hex = _get(bundle, "Payload", "logID")
        try:
            log_id = bytes.fromhex(log_id_hex) if isinstance(log_id_hex, str) else b""
        except ValueError as exc:
            raise _Failure(_PARSE, f"{label} Rekor bundle logID is not hex") from exc
        set_value = bundle.get("SignedEntryTimestamp")
        entries.append(
            _LogEntry(
                body=body,
                integrated_time=_int(_get(bundle, "Payload", "integratedTime"), "integratedTime"),
                log_index=_int(_get(bundle, "Payload", "logIndex"), "logIndex"),
                log_id=log_id,
                signed_entry_timestamp=(
                    _b64decode(set_value, "SignedEntryTimestamp") if set_value else None
                ),
            )
        )
    return _Parsed(
        label=label,
        leaf=leaf,
        intermediates=tuple(intermediates),
        signature=signature,
        signed_bytes=material.payload,
        prehashed=False,
        entries=tuple(entries),
        entry_kinds=frozenset({"hashedrekord", "rekord"}),
        content_hash=hashlib.sha256(material.payload).hexdigest(),
        dsse_payload=None,
        check_binding=_simplesigning_binding(material.payload),
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding (the bytes a DSSE signature covers)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _in_toto_binding(payload_type: str, payload: bytes) -> Callable[[str], str | None]:
    def check(digest_hex: str) -> str | None:
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            return f"DSSE payloadType {payload_type!r} is not an in-toto statement"
        try:
            statement = _json_object(payload, "in-toto statement")
        except _Failure as failure:
            return failure.reason
        subjects = statement.get("subject")
        if not isinstance(subjects, list):
            return "in-toto statement has no subject list"
        named: list[str] = []
        for subject in subjects:
            value = _get(subject, "digest", "sha256")
            if isinstance(value, str):
                if value.lower() == digest_hex:
                    return None
                named.append(value)
        if not named:
            return "in-toto statement has no sha256 subject digest"
        return f"in-toto statement subjects {named} do not include sha256:{digest_hex}"

    return check


def _message_binding(algorithm: Any, raw_digest: bytes) -> Callable[[str], str | None]:
    def check(digest_hex: str) -> str | None:
        if algorithm != "SHA2_256":
            return f"messageDigest algorithm {algorithm!r} is not SHA2_256"
        if raw_digest.hex() != digest_hex:
            return f"message signature is for sha256:{raw_digest.hex()}, not sha256:{digest_hex}"
        return None

    return check


def _bundle_log_entries(entries: Any) -> tuple[_LogEntry, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise _Failure(_PARSE, "bundle tlogEntries is not a list")
    parsed = []
    for entry in entries:
        set_value = _get(entry, "inclusionPromise", "signedEntryTimestamp")
        kind = _get(entry, "kindVersion", "kind")
        body = _get(entry, "canonicalizedBody")
        if not isinstance(body, str):
            raise _Failure(_PARSE, "bundle log entry has no canonicalizedBody")
        parsed.append(
            _LogEntry(
                body=body,
                integrated_time=_int(_get(entry, "integratedTime"), "integratedTime"),
                log_index=_int(_get(entry, "logIndex"), "logIndex"),
                log_id=_b64decode(_get(entry, "logId", "keyId"), "logId.keyId"),
                signed_entry_timestamp=(
                    _b64decode(set_value, "signedEntryTimestamp") if set_value else None
                ),
                kind=kind if isinstance(kind, str) else None,
            )
        )
    return tuple(parsed)


def _parse_bundle(material: BundleMaterial) -> _Parsed:
    document = _json_object(material.bundle, "Sigstore bundle")
    media_type = document.get("mediaType")
    match = _BUNDLE_MEDIA_TYPE_RE.fullmatch(media_type) if isinstance(media_type, str) else None
    if match is None:
        raise _Failure(_PARSE, f"unsupported Sigstore bundle mediaType {media_type!r}")
    version = match.group(1) or match.group(2)
    label = f"Sigstore bundle v{version}"
    vm = document.get("verificationMaterial")
    if not isinstance(vm, Mapping):
        raise _Failure(_PARSE, f"{label} has no verificationMaterial")
    intermediates: list[x509.Certificate] = []
    if vm.get("certificate") is not None:
        leaf = _load_der_certificate(_get(vm, "certificate", "rawBytes"), f"{label} certificate")
    elif vm.get("x509CertificateChain") is not None:
        chain = _get(vm, "x509CertificateChain", "certificates")
        if not isinstance(chain, list) or not chain:
            raise _Failure(_PARSE, f"{label} x509CertificateChain is empty")
        leaf, *intermediates = (
            _load_der_certificate(_get(item, "rawBytes"), f"{label} chain certificate")
            for item in chain
        )
    else:
        raise _NoCertificate
    entries = _bundle_log_entries(vm.get("tlogEntries"))

    envelope = document.get("dsseEnvelope")
    message = document.get("messageSignature")
    if isinstance(envelope, Mapping):
        payload = _b64decode(envelope.get("payload"), f"{label} DSSE payload")
        payload_type = envelope.get("payloadType")
        if not isinstance(payload_type, str):
            raise _Failure(_PARSE, f"{label} DSSE envelope has no payloadType")
        signatures = envelope.get("signatures")
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise _Failure(_PARSE, f"{label} DSSE envelope must carry exactly one signature")
        return _Parsed(
            label=label,
            leaf=leaf,
            intermediates=tuple(intermediates),
            signature=_b64decode(_get(signatures[0], "sig"), f"{label} DSSE signature"),
            signed_bytes=pae(payload_type, payload),
            prehashed=False,
            entries=entries,
            entry_kinds=frozenset({"dsse", "intoto"}),
            content_hash=hashlib.sha256(payload).hexdigest(),
            dsse_payload=payload,
            check_binding=_in_toto_binding(payload_type, payload),
        )
    if isinstance(message, Mapping):
        algorithm = _get(message, "messageDigest", "algorithm")
        raw_digest = _b64decode(_get(message, "messageDigest", "digest"), f"{label} messageDigest")
        if algorithm != "SHA2_256" or len(raw_digest) != 32:
            raise _Failure(_PARSE, f"{label} messageDigest is not a SHA2_256 digest")
        return _Parsed(
            label=label,
            leaf=leaf,
            intermediates=tuple(intermediates),
            signature=_b64decode(message.get("signature"), f"{label} message signature"),
            signed_bytes=raw_digest,
            prehashed=True,
            entries=entries,
            entry_kinds=frozenset({"hashedrekord"}),
            content_hash=raw_digest.hex(),
            dsse_payload=None,
            check_binding=_message_binding(algorithm, raw_digest),
        )
    raise _Failure(_PARSE, f"{label} has neither dsseEnvelope nor messageSignature")


# -- cryptographic checks ------------------------------------------------------------


def _verify_with_key(
    key: PublicKeyTypes, signature: bytes, data: bytes, *, prehashed: bool = False
) -> bool:
    """Whether ``signature`` over ``data`` (or over the SHA-256 digest ``data``
    when ``prehashed``) verifies under ``key``."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if prehashed:
                key.verify(signature, data, ec.ECDSA(Prehashed(hashes.SHA256())))
                return True
            return any(
                _ecdsa_verifies(key, signature, data, algorithm)
                for algorithm in _ecdsa_hashes(key.curve)
            )
        if isinstance(key, rsa.RSAPublicKey):
            algorithm: hashes.HashAlgorithm | Prehashed = (
                Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256()
            )
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            for scheme in (padding.PKCS1v15(), pss):
                try:
                    key.verify(signature, data, scheme, algorithm)
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, ed25519.Ed25519PublicKey) and not prehashed:
            key.verify(signature, data)
            return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return False


def _ecdsa_hashes(curve: ec.EllipticCurve) -> list[hashes.HashAlgorithm]:
    """Hashes to try for an ECDSA key: the curve's own size first, then SHA-256."""
    own: dict[str, hashes.HashAlgorithm] = {
        "secp384r1": hashes.SHA384(),
        "secp521r1": hashes.SHA512(),
    }
    return [own[curve.name], hashes.SHA256()] if curve.name in own else [hashes.SHA256()]


def _ecdsa_verifies(
    key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm
) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def _check_signature(parsed: _Parsed) -> None:
    key = parsed.leaf.public_key()
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise _Failure(_SIGNATURE, f"{parsed.label}: unsupported certificate key type")
    if not _verify_with_key(key, parsed.signature, parsed.signed_bytes, prehashed=parsed.prehashed):
        what = "artifact digest" if parsed.prehashed else "signed content"
        raise _Failure(
            _SIGNATURE,
            f"{parsed.label}: signature does not verify over the {what} with the certificate's key",
        )


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _same_certificate(pem_b64: Any, leaf: x509.Certificate) -> bool:
    """Whether a logged ``publicKey``/``verifier`` (base64 of PEM) is the leaf
    certificate, or the leaf's public key."""
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


def _sig_equal(logged: Any, signature: bytes, *, double: bool = False) -> bool:
    if not isinstance(logged, str):
        return False
    try:
        raw = base64.b64decode(logged, validate=True)
        if raw == signature:
            return True
        return double and base64.b64decode(raw, validate=True) == signature
    except (binascii.Error, ValueError):
        return False


def _entry_mismatch(body: Mapping[str, Any], parsed: _Parsed) -> str | None:
    """Why the logged entry is not this signature (``None`` if it is)."""
    kind = body.get("kind")
    if kind not in parsed.entry_kinds:
        return f"log entry kind {kind!r} cannot record a {parsed.label} signature"
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return "log entry has no spec"
    if kind in ("hashedrekord", "rekord"):
        hash_info = _get(spec, "data", "hash")
        if (
            _get(hash_info, "algorithm") != "sha256"
            or _get(hash_info, "value") != parsed.content_hash
        ):
            return "log entry records a different content hash"
        if not _sig_equal(_get(spec, "signature", "content"), parsed.signature):
            return "log entry records a different signature"
        if not _same_certificate(_get(spec, "signature", "publicKey", "content"), parsed.leaf):
            return "log entry records a different certificate"
        return None
    if parsed.dsse_payload is None:
        return f"log entry kind {kind!r} needs a DSSE payload"
    payload_hash = hashlib.sha256(parsed.dsse_payload).hexdigest()
    if kind == "dsse":
        if _get(spec, "payloadHash", "value") != payload_hash:
            return "log entry records a different DSSE payload hash"
        signatures = spec.get("signatures")
        ok = isinstance(signatures, list) and any(
            _sig_equal(_get(item, "signature"), parsed.signature)
            and _same_certificate(_get(item, "verifier"), parsed.leaf)
            for item in signatures
        )
        return None if ok else "log entry records a different DSSE signature or certificate"
    # intoto (0.0.2): signatures are stored base64-encoded a second time.
    if body.get("apiVersion") != "0.0.2":
        return f"unsupported intoto log entry version {body.get('apiVersion')!r}"
    if _get(spec, "content", "payloadHash", "value") != payload_hash:
        return "log entry records a different in-toto payload hash"
    signatures = _get(spec, "content", "envelope", "signatures")
    ok = isinstance(signatures, list) and any(
        _sig_equal(_get(item, "sig"), parsed.signature, double=True)
        and _same_certificate(_get(item, "publicKey"), parsed.leaf)
        for item in signatures
    )
    return None if ok else "log entry records a different in-toto signature or certificate"


def _check_entry(entry: _LogEntry, parsed: _Parsed, root: TrustedRoot) -> dt.datetime:
    """Verify one log entry; return its integrated time."""
    log: TransparencyLog | None = root.tlog(entry.log_id)
    if log is None:
        raise _Failure(
            _TLOG,
            f"transparency log {entry.log_id.hex()} is not in the trusted root ({root.source})",
        )
    if entry.signed_entry_timestamp is None:
        raise _Failure(_TLOG, "log entry has no signed entry timestamp (inclusion promise)")
    if log.public_key is None:
        raise _Failure(_TLOG, f"transparency log {entry.log_id.hex()} has an unsupported key")
    signed = _canonical_json(
        {
            "body": entry.body,
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )
    if not _verify_with_key(log.public_key, entry.signed_entry_timestamp, signed):
        raise _Failure(_TLOG, "signed entry timestamp does not verify with the log's key")
    when = dt.datetime.fromtimestamp(entry.integrated_time, dt.timezone.utc)
    if not log.valid_for.contains(when):
        raise _Failure(_TLOG, f"log entry time {when.isoformat()} is outside the log's validity")
    body = _json_object(_b64decode(entry.body, "log entry body"), "log entry body")
    if entry.kind is not None and entry.kind != body.get("kind"):
        raise _Failure(_TLOG, "log entry kindVersion does not match its body")
    mismatch = _entry_mismatch(body, parsed)
    if mismatch is not None:
        raise _Failure(_TLOG, f"log entry mismatch: {mismatch}")
    if when > dt.datetime.now(dt.timezone.utc) + _CLOCK_SKEW:
        raise _Failure(_TLOG, f"log entry integrated time {when.isoformat()} is in the future")
    return when


def _signing_time(parsed: _Parsed, root: TrustedRoot) -> dt.datetime:
    if not parsed.entries:
        raise _Failure(
            _TLOG, f"{parsed.label}: no trusted signing time (no transparency log entry)"
        )
    failures: list[_Failure] = []
    for entry in parsed.entries:
        try:
            return _check_entry(entry, parsed, root)
        except _Failure as failure:
            failures.append(failure)
    raise _Failure(_TLOG, f"{parsed.label}: " + "; ".join(f.reason for f in failures))


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _ca_problem(cert: x509.Certificate, when: dt.datetime, below: int) -> str | None:
    """Why ``cert`` may not act as a CA at ``when`` with ``below`` CA
    certificates under it on the path (``None`` if it may)."""
    name = cert.subject.rfc4514_string() or "<empty subject>"
    if not _valid_at(cert, when):
        return f"CA certificate {name} was not valid at {when.isoformat()}"
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"CA certificate {name} has no basicConstraints"
    if not constraints.ca:
        return f"certificate {name} is not a CA"
    if constraints.path_length is not None and below > constraints.path_length:
        return f"CA certificate {name} path length exceeded"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.key_cert_sign else f"CA certificate {name} lacks keyCertSign"


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_leaf(leaf: x509.Certificate, when: dt.datetime) -> None:
    if not _valid_at(leaf, when):
        raise _Failure(
            _CHAIN,
            f"certificate was not valid at signing time {when.isoformat()} (valid "
            f"{leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()})",
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise _Failure(_CHAIN, "certificate lacks keyUsage or extendedKeyUsage") from exc
    if not usage.digital_signature:
        raise _Failure(_CHAIN, "certificate key usage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise _Failure(_CHAIN, "certificate extended key usage lacks codeSigning")
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise _Failure(_CHAIN, "signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass


def _check_chain(parsed: _Parsed, root: TrustedRoot, when: dt.datetime) -> None:
    """Build a path leaf → (untrusted intermediates) → a certificate of a
    Fulcio CA valid at ``when``, and check it."""
    anchors = [
        (authority.certificates, index)
        for authority in root.certificate_authorities
        if authority.valid_for.contains(when)
        for index in range(len(authority.certificates))
    ]
    problems: list[str] = []

    def extend(cert: x509.Certificate, path: list[x509.Certificate]) -> bool:
        below = len(path) - 1  # CA certificates already under the next issuer
        for chain, index in anchors:
            if not _issued_by(cert, chain[index]):
                continue
            problem = next(
                (
                    p
                    for offset, ca in enumerate(chain[index:])
                    if (p := _ca_problem(ca, when, below + offset)) is not None
                ),
                None,
            )
            if problem is None:
                return True
            problems.append(problem)
        if len(path) >= 6:
            return False
        for candidate in parsed.intermediates:
            if candidate in path or not _issued_by(cert, candidate):
                continue
            problem = _ca_problem(candidate, when, below)
            if problem is not None:
                problems.append(problem)
                continue
            if extend(candidate, [*path, candidate]):
                return True
        return False

    if not extend(parsed.leaf, [parsed.leaf]):
        detail = f": {problems[0]}" if problems else ""
        raise _Failure(
            _CHAIN,
            f"{parsed.label}: certificate does not chain to a Fulcio CA of the trusted root "
            f"({root.source}) valid at {when.isoformat()}{detail}",
        )
    try:
        _check_leaf(parsed.leaf, when)
    except _Failure as failure:
        raise _Failure(_CHAIN, f"{parsed.label}: {failure.reason}") from None


# -- identity ------------------------------------------------------------------------


def _der_utf8string(value: bytes) -> str | None:
    """Decode a DER UTF8String (tag 0x0C); ``None`` if ``value`` is not one."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if len(value) != offset + length:
        return None
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _extension_bytes(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio recorded: OID …1.8 (DER UTF8String), else …1.1 (raw)."""
    v2 = _extension_bytes(cert, OID_ISSUER_V2)
    if v2 is not None:
        decoded = _der_utf8string(v2)
        if decoded is not None:
            return decoded
    raw = v2 if v2 is not None else _extension_bytes(cert, OID_ISSUER_V1)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def certificate_subject(cert: x509.Certificate) -> str | None:
    """The signer identity: the first URI or email in the SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    names: list[str] = [
        *san.get_values_for_type(x509.UniformResourceIdentifier),
        *san.get_values_for_type(x509.RFC822Name),
    ]
    return names[0] if names else None


# -- the verifier --------------------------------------------------------------------


def _verify_one(
    material: SignatureMaterial,
    digest_hex: str,
    root: TrustedRoot,
    identities: Sequence[TrustedIdentity],
) -> VerificationResult:
    """Check one material fully; raise ``_Failure`` or ``_NoCertificate``."""
    if isinstance(material, SimpleSigningMaterial):
        parsed = _parse_simplesigning(material)
    elif isinstance(material, BundleMaterial):
        parsed = _parse_bundle(material)
    else:  # pragma: no cover - guarded by the type
        raise TypeError(f"unknown signature material {type(material).__name__}")
    _check_signature(parsed)
    try:
        when = _signing_time(parsed, root)
    except _Failure as failure:
        if not parsed.entries:
            # Without a log entry there is no signing time; still report a
            # certificate that could never chain, as that is the root cause.
            try:
                _check_chain(parsed, root, parsed.leaf.not_valid_before_utc)
            except _Failure as chain_failure:
                raise _Failure(
                    failure.stage, f"{chain_failure.reason}; also {failure.reason}"
                ) from None
        raise
    _check_chain(parsed, root, when)
    binding = parsed.check_binding(digest_hex)
    if binding is not None:
        raise _Failure(_BINDING, f"{parsed.label}: {binding}")
    issuer = certificate_issuer(parsed.leaf)
    subject = certificate_subject(parsed.leaf)
    if issuer is None or subject is None:
        missing = "OIDC issuer extension" if issuer is None else "SAN identity"
        raise _Failure(
            _IDENTITY,
            f"{parsed.label}: certificate has no {missing}, so no trusted identity can match",
            issuer,
            subject,
        )
    if not any(identity.matches(issuer, subject) for identity in identities):
        raise _Failure(
            _IDENTITY,
            f"identity {subject} (issuer {issuer}) is not trusted",
            issuer,
            subject,
        )
    return VerificationResult(SignatureStatus.VERIFIED, issuer=issuer, subject=subject)


class CosignVerifier:
    """Keyless cosign verification under a :class:`VerificationConfig`."""

    def __init__(self, config: VerificationConfig, client: OciRegistryClient | None = None) -> None:
        self.config = config
        self._client = client
        self._root: TrustedRoot | None = None
        if config.enabled:
            self._root = load_trusted_root(config.trusted_root)

    @property
    def trusted_root(self) -> TrustedRoot:
        if self._root is None:
            self._root = load_trusted_root(self.config.trusted_root)
        return self._root

    def bind(self, client: OciRegistryClient) -> None:
        """Use ``client`` for registry requests unless one is already set."""
        if self._client is None:
            self._client = client

    def verify_materials(
        self,
        materials: Sequence[SignatureMaterial],
        digest: str,
        *,
        docker_reference: str | None = None,
    ) -> VerificationResult:
        """Verify ``materials`` found for the artifact ``digest`` (offline).

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
        root = self.trusted_root
        identities = self.config.effective_identities
        failures: list[_Failure] = []
        keyless = 0
        for material in materials:
            try:
                result = _verify_one(material, digest_hex, root, identities)
            except _NoCertificate:
                continue
            except _Failure as failure:
                keyless += 1
                failures.append(failure)
                continue
            except _MALFORMED as exc:
                # cryptography decodes certificate fields lazily: a broken
                # extension or key surfaces only when it is read.
                keyless += 1
                failures.append(_Failure(_PARSE, f"malformed certificate or key: {exc}"))
                continue
            keyless += 1
            problem = _reference_problem(material, docker_reference)
            if problem is None:
                return result
            failures.append(_Failure(_BINDING, problem))
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

    async def verify_plugin(
        self, ref: str | PluginReference, digest: str | None = None
    ) -> VerificationResult:
        """Look up the signatures of ``ref`` (at ``digest``, else its current
        digest) in its registry and verify them."""
        if not self.config.enabled:
            return VerificationResult(SignatureStatus.UNSIGNED, reason="verification disabled")
        client = self._client
        if client is None:
            raise RegistryError(
                f"{ref}: cannot verify signatures: the verifier has no registry client"
            )
        from drasi_host.registry.reference import PluginReference
        from drasi_host.registry.signatures import fetch_signature_materials

        reference = (
            ref
            if isinstance(ref, PluginReference)
            else PluginReference.parse(ref, client.config.default_registry)
        )
        if digest is None:
            digest = await client.get_digest(reference)
        materials = await fetch_signature_materials(client, reference, digest)
        return self.verify_materials(materials, digest)


def _strip_reference(reference: str) -> str:
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _reference_problem(material: SignatureMaterial, docker_reference: str | None) -> str | None:
    if docker_reference is None or not isinstance(material, SimpleSigningMaterial):
        return None
    text = material.payload
    if text.startswith(_SIGSTORE_JSON_PREFIX):
        text = text[len(_SIGSTORE_JSON_PREFIX) :]
    try:
        signed = _get(json.loads(text), "critical", "identity", "docker-reference")
    except ValueError:
        signed = None
    if isinstance(signed, str) and _strip_reference(signed) == _strip_reference(docker_reference):
        return None
    return f"signature names docker-reference {signed!r}, not {docker_reference!r}"


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
    "pae",
]
