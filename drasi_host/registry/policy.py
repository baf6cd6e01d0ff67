"""Who may sign plugins: trusted identities and the certificate fields they match.

A :class:`TrustedIdentity` is an OIDC issuer (exact) and a subject glob where
only ``*`` is special.  :class:`IdentityPolicy` applies a list of them to a
Fulcio certificate; it is also a sigstore-python ``VerificationPolicy``, so the
same rule decides for bundles (checked by sigstore-python) and for classic
simplesigning layers (checked by :mod:`.simplesigning`).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from cryptography import x509
from sigstore.errors import VerificationError

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


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


class IdentityPolicy:
    """Accepts a certificate whose issuer and subject match one of
    ``identities``.  :meth:`verify` raises sigstore's ``VerificationError``
    otherwise (the sigstore-python ``VerificationPolicy`` protocol)."""

    def __init__(self, identities: Iterable[TrustedIdentity]) -> None:
        self.identities = tuple(identities)

    def problem(self, cert: x509.Certificate) -> str | None:
        """Why ``cert`` is not trusted (``None`` when it is)."""
        issuer = certificate_issuer(cert)
        subject = certificate_subject(cert)
        if issuer is None or subject is None:
            missing = "OIDC issuer extension" if issuer is None else "SAN identity"
            return f"certificate has no {missing}, so no trusted identity can match"
        if not any(identity.matches(issuer, subject) for identity in self.identities):
            return f"identity {subject} (issuer {issuer}) is not trusted"
        return None

    def verify(self, cert: x509.Certificate) -> None:
        problem = self.problem(cert)
        if problem is not None:
            raise VerificationError(problem)


__all__ = [
    "DEFAULT_TRUSTED_IDENTITIES",
    "IdentityPolicy",
    "TrustedIdentity",
    "certificate_issuer",
    "certificate_subject",
    "glob_match",
]
