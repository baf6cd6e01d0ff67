"""Parsing Sigstore trusted roots: the real production, staging and older
public-good roots, the bundled default, and tolerance/strictness edges."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from signing import TestSigner

from drasi_host.errors import RegistryError
from drasi_host.registry.trust import (
    TrustedRoot,
    ValidityPeriod,
    load_trusted_root,
    parse_timestamp,
)

UTC = dt.timezone.utc
REKOR_V1_LOG_ID = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"


SIGSTORE_DATA = Path(__file__).parent / "data" / "sigstore"


def _sigstore_dir() -> Path:
    return SIGSTORE_DATA


@pytest.fixture
def sigstore() -> Path:
    return SIGSTORE_DATA


def _spki(key: object) -> bytes:
    assert isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey))
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_production_root(sigstore: Path) -> None:
    root = TrustedRoot.from_path(sigstore / "trusted_root.production.json")
    assert root.media_type == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert len(root.certificate_authorities) == 2
    legacy, current = root.certificate_authorities
    # CA #1 is the 2021 root alone, with a bounded validity.
    assert len(legacy.certificates) == 1
    assert legacy.valid_for.start == dt.datetime(2021, 3, 7, 3, 20, 29, tzinfo=UTC)
    assert legacy.valid_for.end == dt.datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert legacy.subject == "O=sigstore.dev,CN=sigstore"
    assert legacy.uri == "https://fulcio.sigstore.dev"
    # CA #2 is intermediate then root, open-ended.
    assert len(current.certificates) == 2
    assert current.certificates[0].issuer == current.certificates[1].subject
    assert current.valid_for.end is None

    assert [log.log_id.hex()[:8] for log in root.tlogs] == ["c0d23d6a", "cf119915"]
    v1, v2 = root.tlogs
    assert isinstance(v1.public_key, ec.EllipticCurvePublicKey)
    assert v1.public_key.curve.name == "secp256r1"
    assert isinstance(v2.public_key, ed25519.Ed25519PublicKey)
    assert v2.key_details == "PKIX_ED25519"
    # The Rekor v1 logId is the SHA-256 of the key's DER encoding (Rekor v2
    # derives its id differently, so the file's value is what counts).
    assert hashlib.sha256(_spki(v1.public_key)).digest() == v1.log_id
    assert hashlib.sha256(_spki(v2.public_key)).digest() != v2.log_id
    assert root.tlog(bytes.fromhex(REKOR_V1_LOG_ID)) is v1
    assert root.tlog(b"\x00" * 32) is None
    assert len(root.ctlogs) == 2
    assert len(root.timestamp_authorities) == 1
    assert root.timestamp_authorities[0].uri == "https://timestamp.sigstore.dev/api/v1/timestamp"


def test_staging_root(sigstore: Path) -> None:
    root = TrustedRoot.from_path(sigstore / "trusted_root.staging.json")
    assert len(root.certificate_authorities) == 1
    assert root.tlogs[0].log_id.hex().startswith("d32f30a3")
    # The alpha Rekor v2 logs have closed validity periods.
    alpha = root.tlogs[1]
    assert alpha.valid_for.end == dt.datetime(2025, 9, 4, tzinfo=UTC)
    assert not alpha.valid_for.contains(dt.datetime(2025, 10, 1, tzinfo=UTC))
    # The first CT log key is a raw PKCS#1 RSA key; it still loads.
    assert isinstance(root.ctlogs[0].public_key, rsa.RSAPublicKey)
    assert root.tlog(bytes.fromhex(REKOR_V1_LOG_ID)) is None


def test_public_good_root_is_tolerated(sigstore: Path) -> None:
    root = TrustedRoot.from_path(sigstore / "more" / "trusted_root.public-good.json")
    # Fractional-second timestamps.
    assert root.certificate_authorities[0].valid_for.start == dt.datetime(
        2021, 3, 7, 3, 20, 29, tzinfo=UTC
    )
    assert root.certificate_authorities[1].valid_for.start == dt.datetime(
        2022, 4, 13, 20, 6, 15, tzinfo=UTC
    )
    # No Rekor v2 log; a TSA without uri.
    assert [log.log_id.hex() for log in root.tlogs] == [REKOR_V1_LOG_ID]
    assert root.timestamp_authorities[0].uri is None
    assert root.timestamp_authorities[0].subject == "O=GitHub, Inc.,CN=Internal Services Root"
    production = TrustedRoot.from_path(sigstore / "trusted_root.production.json")
    assert [c.certificates for c in root.certificate_authorities] == [
        c.certificates for c in production.certificate_authorities
    ]


def test_bundled_root_is_the_production_root(sigstore: Path) -> None:
    data = Path(__file__).resolve().parents[2] / "drasi_host" / "registry" / "data"
    assert (data / "trusted_root.json").read_bytes() == (
        sigstore / "trusted_root.production.json"
    ).read_bytes()
    bundled = TrustedRoot.production()
    assert bundled is load_trusted_root(None)
    assert bundled.source.startswith("bundled")
    assert [log.log_id for log in bundled.tlogs] == [
        log.log_id for log in TrustedRoot.from_path(sigstore / "trusted_root.production.json").tlogs
    ]


def test_load_trusted_root_from_path(sigstore: Path) -> None:
    path = sigstore / "trusted_root.staging.json"
    assert load_trusted_root(path).source == str(path)
    assert load_trusted_root(str(path)).tlogs[0].log_id.hex().startswith("d32f30a3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-07T03:20:29Z", dt.datetime(2021, 3, 7, 3, 20, 29, tzinfo=UTC)),
        ("2021-03-07T03:20:29.000Z", dt.datetime(2021, 3, 7, 3, 20, 29, tzinfo=UTC)),
        ("2022-12-31T23:59:59.999Z", dt.datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        (
            "2022-12-31T23:59:59.123456789Z",
            dt.datetime(2022, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
        ),
        ("2022-01-01T02:00:00+02:00", dt.datetime(2022, 1, 1, 0, 0, tzinfo=UTC)),
        ("2022-01-01T00:00:00-01:30", dt.datetime(2022, 1, 1, 1, 30, tzinfo=UTC)),
        ("2022-01-01T00:00:00", dt.datetime(2022, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: dt.datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2022-01-01", "2022-01-01T00:00Z", "1700000000"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_validity_period() -> None:
    start = dt.datetime(2022, 1, 1, tzinfo=UTC)
    end = dt.datetime(2023, 1, 1, tzinfo=UTC)
    period = ValidityPeriod(start, end)
    assert period.contains(start) and period.contains(end)
    assert not period.contains(start - dt.timedelta(seconds=1))
    assert not period.contains(end + dt.timedelta(seconds=1))
    assert ValidityPeriod(start).contains(dt.datetime(2999, 1, 1, tzinfo=UTC))
    assert ValidityPeriod().contains(dt.datetime(1970, 1, 1, tzinfo=UTC))


def _key_b64() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(_spki(key)).decode()


def test_missing_optional_fields() -> None:
    raw = _key_b64()
    root = TrustedRoot.from_json(json.dumps({"tlogs": [{"publicKey": {"rawBytes": raw}}]}))
    (log,) = root.tlogs
    assert log.log_id == hashlib.sha256(base64.b64decode(raw)).digest()
    assert log.valid_for == ValidityPeriod()
    assert log.base_url is None and log.key_details is None
    assert root.certificate_authorities == () and root.media_type is None


def test_unsupported_key_leaves_log_unusable() -> None:
    document = {
        "tlogs": [
            {
                "publicKey": {"rawBytes": base64.b64encode(b"not a key").decode()},
                "logId": {"keyId": base64.b64encode(b"\x01" * 32).decode()},
            }
        ]
    }
    (log,) = TrustedRoot.from_json(document).tlogs
    assert log.public_key is None
    assert log.log_id == b"\x01" * 32


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "invalid Sigstore trusted root"),
        ("[]", "not a JSON object"),
        ('{"mediaType": "application/json"}', "unexpected mediaType"),
        ('{"certificateAuthorities": [{"uri": "x"}]}', "no certChain"),
        ('{"certificateAuthorities": {"a": 1}}', "must be a list"),
        ('{"tlogs": [{"baseUrl": "x"}]}', "no publicKey"),
        ('{"tlogs": [{"publicKey": {"rawBytes": "%%%"}}]}', "invalid Sigstore trusted root"),
        (
            '{"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "AAAA"}]}}]}',
            "invalid Sigstore trusted root",
        ),
        (
            '{"tlogs": [{"publicKey": {"rawBytes": "AAAA", "validFor": {"start": "soon"}}}]}',
            "not an RFC 3339 timestamp",
        ),
    ],
)
def test_malformed_roots_raise_registry_error(document: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as info:
        TrustedRoot.from_json(document, source="my-root.json")
    assert "my-root.json" in str(info.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(RegistryError, match=r"absent\.json"):
        TrustedRoot.from_path(path)


def test_test_signer_root_parses(tmp_path: Path) -> None:
    signer = TestSigner(tmp_path)
    root = TrustedRoot.from_path(signer.trusted_root_path)
    (authority,) = root.certificate_authorities
    assert authority.certificates == (signer.intermediate_cert, signer.root_cert)
    assert root.tlog(signer.log_id) is not None
    assert authority.valid_for.contains(signer.now)
