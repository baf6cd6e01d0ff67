"""A self-contained Sigstore look-alike for tests.

``TestSigner`` plays Fulcio and Rekor at once: it owns a test root CA and
intermediate (ECDSA P-384) and a test transparency-log key (ECDSA P-256), and
writes a ``trusted_root.json`` in the production file's format naming them.
It then produces classic cosign simplesigning layers (payload bytes + layer
annotations, including a ``dev.sigstore.cosign/bundle`` with a signed entry
timestamp over a ``hashedrekord`` entry), the format drasi-host verifies with
its own code.  Sigstore bundles are verified by sigstore-python, which also
wants SCTs, inclusion proofs and checkpoints: their tests use real bundles.

Keyword knobs build the usual broken variants (expired leaf, SET from a wrong
log key, unknown log, missing issuer extension, ...).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")

SIMPLESIGNING_TYPE = "cosign container image signature"

LeafKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _der_utf8string(text: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String (how Fulcio writes OID ...1.8)."""
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        length = bytes([len(raw)])
    else:
        size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return b"\x0c" + length + raw


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def simplesigning_payload(docker_reference: str, digest: str) -> bytes:
    """The compact JSON document cosign signs for an image."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLESIGNING_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


class TestSigner:
    """A test Fulcio CA + Rekor log; see the module docstring."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self._log_index = 1000

        self.root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drasi-test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "drasi-test-root"),
            ]
        )
        self.root_cert = self._ca_cert(
            root_name, root_name, self.root_key.public_key(), self.root_key, path_length=1
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        intermediate_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drasi-test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "drasi-test-intermediate"),
            ]
        )
        self.intermediate_cert = self._ca_cert(
            intermediate_name,
            root_name,
            self.intermediate_key.public_key(),
            self.root_key,
            path_length=0,
        )
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = hashlib.sha256(_spki_der(self.log_key.public_key())).digest()

        self.trusted_root_path = self.directory / "trusted_root.json"
        self.trusted_root_path.write_text(
            json.dumps(self.trusted_root_document(), indent=2), encoding="utf-8"
        )

    # -- certificates ---------------------------------------------------------

    def _ca_cert(
        self,
        subject: x509.Name,
        issuer: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        signing_key: ec.EllipticCurvePrivateKey,
        *,
        path_length: int,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        return builder.sign(signing_key, hashes.SHA384())

    def issue_leaf(
        self,
        issuer: str,
        subject: str,
        *,
        key: LeafKey | None = None,
        expired: bool = False,
        include_issuer: bool = True,
        code_signing: bool = True,
        signed_by_root: bool = False,
    ) -> tuple[LeafKey, x509.Certificate]:
        """A Fulcio-style short-lived leaf for (issuer, subject).

        ``expired`` makes the leaf end ten minutes before ``now`` (the default
        log time), so it is not valid at signing time."""
        leaf_key: LeafKey = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        if expired:
            start, end = self.now - dt.timedelta(minutes=20), self.now - dt.timedelta(minutes=10)
        else:
            start, end = self.now - dt.timedelta(minutes=1), self.now + dt.timedelta(minutes=10)
        if "@" in subject and "://" not in subject:
            san: x509.GeneralName = x509.RFC822Name(subject)
        else:
            san = x509.UniformResourceIdentifier(subject)
        ca_cert, ca_key = (
            (self.root_cert, self.root_key)
            if signed_by_root
            else (self.intermediate_cert, self.intermediate_key)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CODE_SIGNING]
                    if code_signing
                    else [ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if include_issuer:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode("utf-8")), critical=False
            ).add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8string(issuer)), critical=False
            )
        return leaf_key, builder.sign(ca_key, hashes.SHA384())

    # -- trusted root ---------------------------------------------------------

    def trusted_root_document(self) -> dict[str, Any]:
        der = [
            _b64(cert.public_bytes(serialization.Encoding.DER))
            for cert in (self.intermediate_cert, self.root_cert)
        ]
        start = _rfc3339(self.now - dt.timedelta(days=1))
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": "https://rekor.test.invalid",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": _b64(_spki_der(self.log_key.public_key())),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": {"start": start},
                    },
                    "logId": {"keyId": _b64(self.log_id)},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "drasi-test", "commonName": "drasi-test-root"},
                    "uri": "https://fulcio.test.invalid",
                    "certChain": {"certificates": [{"rawBytes": value} for value in der]},
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [],
            "timestampAuthorities": [],
        }

    # -- transparency log -----------------------------------------------------

    def _log_entry(
        self,
        body: dict[str, Any],
        *,
        integrated_time: int | None,
        wrong_log_key: bool,
        unknown_log: bool,
    ) -> tuple[str, int, int, str, bytes]:
        """Return (base64 body, integratedTime, logIndex, logID hex, SET)."""
        body_b64 = _b64(_canonical(body))
        when = int(self.now.timestamp()) if integrated_time is None else integrated_time
        self._log_index += 1
        key = self.log_key
        log_id = self.log_id
        if wrong_log_key or unknown_log:
            key = ec.generate_private_key(ec.SECP256R1())
        if unknown_log:
            log_id = hashlib.sha256(_spki_der(key.public_key())).digest()
        signed = _canonical(
            {
                "body": body_b64,
                "integratedTime": when,
                "logID": log_id.hex(),
                "logIndex": self._log_index,
            }
        )
        set_sig = key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return body_b64, when, self._log_index, log_id.hex(), set_sig

    # -- signing --------------------------------------------------------------

    @staticmethod
    def _sign(key: LeafKey, data: bytes) -> bytes:
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        algorithm: hashes.HashAlgorithm = (
            hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
        )
        return key.sign(data, ec.ECDSA(algorithm))

    def sign_simplesigning(
        self,
        docker_reference: str,
        digest: str,
        issuer: str,
        subject: str,
        *,
        expired: bool = False,
        wrong_log_key: bool = False,
        unknown_log: bool = False,
        include_issuer: bool = True,
        include_bundle: bool = True,
        integrated_time: int | None = None,
        key: LeafKey | None = None,
        signed_by_root: bool = False,
        code_signing: bool = True,
    ) -> tuple[bytes, dict[str, str]]:
        """A classic cosign signature layer: (payload bytes, layer annotations)."""
        payload = simplesigning_payload(docker_reference, digest)
        leaf_key, leaf = self.issue_leaf(
            issuer,
            subject,
            key=key,
            expired=expired,
            include_issuer=include_issuer,
            signed_by_root=signed_by_root,
            code_signing=code_signing,
        )
        signature = self._sign(leaf_key, payload)
        leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)
        chain_pem = b"".join(
            cert.public_bytes(serialization.Encoding.PEM)
            for cert in (self.intermediate_cert, self.root_cert)
        )
        annotations = {
            "dev.cosignproject.cosign/signature": _b64(signature),
            "dev.sigstore.cosign/certificate": leaf_pem.decode("ascii"),
            "dev.sigstore.cosign/chain": chain_pem.decode("ascii"),
        }
        if include_bundle:
            body = {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {
                        "hash": {
                            "algorithm": "sha256",
                            "value": hashlib.sha256(payload).hexdigest(),
                        }
                    },
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {"content": _b64(leaf_pem)},
                    },
                },
            }
            body_b64, when, index, log_id, set_sig = self._log_entry(
                body,
                integrated_time=integrated_time,
                wrong_log_key=wrong_log_key,
                unknown_log=unknown_log,
            )
            annotations["dev.sigstore.cosign/bundle"] = json.dumps(
                {
                    "SignedEntryTimestamp": _b64(set_sig),
                    "Payload": {
                        "body": body_b64,
                        "integratedTime": when,
                        "logIndex": index,
                        "logID": log_id,
                    },
                }
            )
        return payload, annotations
