"""Keyless cosign verification, offline: classic simplesigning layers (our
own checks) and what is common to every material.

Two sources of material: the real Sigstore signatures under
``data/sigstore`` (every outcome their READMEs list), and ``TestSigner``,
which mints fresh simplesigning signatures under a test root so that each
check can be broken on its own.  Sigstore bundles (verified by
sigstore-python) are in ``test_bundles.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing import TestSigner

from drasi_host.errors import RegistryError
from drasi_host.registry.cosign import (
    DEFAULT_TRUSTED_IDENTITIES,
    BundleMaterial,
    CosignVerifier,
    SignatureMaterial,
    SignatureStatus,
    SimpleSigningMaterial,
    TrustedIdentity,
    VerificationConfig,
    VerificationResult,
    certificate_issuer,
    glob_match,
)

GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
CONFORMANCE = TrustedIdentity(GITHUB_ACTIONS, "https://github.com/sigstore-conformance/*")
MITR = TrustedIdentity(GITHUB_OAUTH, "mitr@redhat.com")

FULCIO_REKOR_DIGEST = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
MITR_2022_DIGEST = "sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f"
LEGACY_DIGEST = "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e"
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
OTHER_DIGEST = "sha256:" + "ab" * 32

DRASI_SUBJECT = (
    "https://github.com/drasi-project/drasi-core/.github/workflows/release.yml@refs/tags/v0.4.2"
)
PLUGIN_DIGEST = "sha256:" + hashlib.sha256(b"a plugin manifest").hexdigest()
PLUGIN_REF = "ghcr.io/drasi-project/source/postgres"


# -- fixtures ------------------------------------------------------------------------


SIGSTORE_DATA = Path(__file__).parent / "data" / "sigstore"


def _sigstore_dir() -> Path:
    return SIGSTORE_DATA


@pytest.fixture
def sigstore() -> Path:
    return SIGSTORE_DATA


@pytest.fixture
def a_txt_digest(sigstore: Path) -> str:
    digest = "sha256:" + hashlib.sha256((sigstore / "bundles" / "a.txt").read_bytes()).hexdigest()
    assert digest.startswith("sha256:a0cfc712")
    return digest


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("sigstore"))


def verifier(
    *identities: TrustedIdentity, root: Path | str | None = None, enabled: bool = True
) -> CosignVerifier:
    return CosignVerifier(
        VerificationConfig(enabled=enabled, trusted_identities=identities, trusted_root=root)
    )


def simplesigning(directory: Path) -> SimpleSigningMaterial:
    annotations = json.loads((directory / "annotations.json").read_text())
    return SimpleSigningMaterial((directory / "payload.json").read_bytes(), annotations)


def bundle(path: Path) -> BundleMaterial:
    return BundleMaterial(path.read_bytes())


def assert_invalid(result: VerificationResult, pattern: str) -> None:
    assert result.status is SignatureStatus.INVALID, result
    assert not result.verified
    assert result.reason is not None and re.search(pattern, result.reason), result.reason


# -- identity globs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("*", "anything/at/all", True),
        ("exact", "exact", True),
        ("exact", "exact2", False),
        ("", "", True),
        ("", "x", False),
        ("ab*ba", "aba", False),  # prefix and suffix must not overlap
        ("ab*ba", "abba", True),
        ("ab*ba", "abxba", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "ac", False),
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxcyyb", False),
        ("*x*", "x", True),
        ("**", "", True),
        ("a?c", "abc", False),  # only * is special
        ("a.c", "abc", False),
        ("[ab]", "a", False),
        (
            "https://github.com/drasi-project/*",
            "https://github.com/drasi-project/x/y@refs/pull/1",
            True,
        ),
        ("https://github.com/drasi-project/*", "https://github.com/drasi-projectx/y", False),
        ("https://github.com/drasi-project/*", "https://github.com/evil/drasi-project/x", False),
    ],
)
def test_glob_match(pattern: str, text: str, expected: bool) -> None:
    assert glob_match(pattern, text) is expected


def _reference_glob(pattern: str, text: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, text, re.DOTALL) is not None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab/*", max_size=8), st.text(alphabet="ab/*", max_size=10))
def test_glob_match_agrees_with_reference(pattern: str, text: str) -> None:
    assert glob_match(pattern, text) is _reference_glob(pattern, text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab/*", max_size=6), st.text(alphabet="ab/", max_size=6))
def test_glob_star_absorbs_any_middle(prefix: str, middle: str) -> None:
    pattern = prefix.replace("*", "") + "*"
    assert glob_match(pattern, pattern[:-1] + middle)


def test_trusted_identity_matches_issuer_exactly() -> None:
    identity = TrustedIdentity(GITHUB_ACTIONS, "https://github.com/drasi-project/*")
    assert identity.matches(GITHUB_ACTIONS, "https://github.com/drasi-project/a")
    assert not identity.matches(GITHUB_ACTIONS + "/", "https://github.com/drasi-project/a")
    assert not identity.matches("https://accounts.google.com", "https://github.com/drasi-project/a")
    assert (identity,) == DEFAULT_TRUSTED_IDENTITIES


def test_config_defaults() -> None:
    config = VerificationConfig()
    assert config.enabled and config.trusted_root is None
    assert config.effective_identities == DEFAULT_TRUSTED_IDENTITIES
    listed = VerificationConfig(trusted_identities=[MITR])
    assert listed.trusted_identities == (MITR,)
    assert listed.effective_identities == (MITR,)
    hash(listed)  # frozen and hashable even when given a list


# -- real material: classic cosign simplesigning ----------------------------------------


def test_fulcio_rekor_valid(sigstore: Path) -> None:
    directory = sigstore / "simplesigning" / "fulcio-rekor-valid"
    manifest_digest = (
        "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    )
    assert manifest_digest == FULCIO_REKOR_DIGEST
    result = verifier(MITR).verify_materials([simplesigning(directory)], manifest_digest)
    assert result == VerificationResult(SignatureStatus.VERIFIED, GITHUB_OAUTH, "mitr@redhat.com")
    assert result.verified


def test_fulcio_rekor_valid_under_default_identity(sigstore: Path) -> None:
    material = simplesigning(sigstore / "simplesigning" / "fulcio-rekor-valid")
    result = verifier().verify_materials([material], FULCIO_REKOR_DIGEST)
    assert_invalid(result, r"identity mitr@redhat\.com .* not trusted")
    assert (result.issuer, result.subject) == (GITHUB_OAUTH, "mitr@redhat.com")


def test_fulcio_rekor_valid_other_digest(sigstore: Path) -> None:
    material = simplesigning(sigstore / "simplesigning" / "fulcio-rekor-valid")
    result = verifier(MITR).verify_materials([material], OTHER_DIGEST)
    assert_invalid(result, "docker-manifest-digest mismatch")


def test_fulcio_rekor_valid_one_byte_changed(sigstore: Path) -> None:
    material = simplesigning(sigstore / "simplesigning" / "fulcio-rekor-valid")
    payload = material.payload.replace(b"fulcio-rekor-1", b"fulcio-rekor-2")
    assert len(payload) == len(material.payload) and payload != material.payload
    result = verifier(MITR).verify_materials(
        [SimpleSigningMaterial(payload, material.annotations)], FULCIO_REKOR_DIGEST
    )
    assert_invalid(result, "signature does not verify")


def test_fulcio_rekor_valid_docker_reference(sigstore: Path) -> None:
    material = simplesigning(sigstore / "simplesigning" / "fulcio-rekor-valid")
    ok = verifier(MITR).verify_materials(
        [material],
        FULCIO_REKOR_DIGEST,
        docker_reference="192.168.64.2:5000/cosign-signed/fulcio-rekor-1:latest",
    )
    assert ok.verified
    moved = verifier(MITR).verify_materials(
        [material], FULCIO_REKOR_DIGEST, docker_reference="127.0.0.1:5000/elsewhere"
    )
    assert_invalid(moved, "docker-reference")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_byte_flips_never_verify(data: st.DataObject) -> None:
    material = simplesigning(_sigstore_dir() / "simplesigning" / "fulcio-rekor-valid")
    payload = bytearray(material.payload)
    position = data.draw(st.integers(0, len(payload) - 1))
    payload[position] ^= data.draw(st.integers(1, 255))
    result = verifier(MITR).verify_materials(
        [SimpleSigningMaterial(bytes(payload), material.annotations)], FULCIO_REKOR_DIGEST
    )
    assert result.status is SignatureStatus.INVALID


@pytest.mark.parametrize(
    "root_file", ["trusted_root.production.json", "more/trusted_root.public-good.json"]
)
def test_mitr_2022_12(sigstore: Path, root_file: str) -> None:
    material = simplesigning(sigstore / "more" / "simplesigning" / "mitr-2022-12")
    check = verifier(MITR, root=sigstore / root_file)
    assert check.verify_materials([material], MITR_2022_DIGEST) == VerificationResult(
        SignatureStatus.VERIFIED, GITHUB_OAUTH, "mitr@redhat.com"
    )
    assert_invalid(check.verify_materials([material], OTHER_DIGEST), "docker-manifest-digest")
    untrusted = verifier(root=sigstore / root_file).verify_materials([material], MITR_2022_DIGEST)
    assert_invalid(untrusted, "not trusted")
    assert untrusted.subject == "mitr@redhat.com"


def test_legacy_2021_root_signed(sigstore: Path) -> None:
    material = simplesigning(sigstore / "more" / "simplesigning" / "legacy-2021-root-signed")
    assert "dev.sigstore.cosign/chain" not in material.annotations
    # Checks run signature → log → chain → binding → identity, so failing on
    # the missing issuer means the others passed (chain via CA #1, the 2021 root).
    for identities in [(), (TrustedIdentity("", "*"),), (TrustedIdentity(GITHUB_OAUTH, "*"),)]:
        result = verifier(*identities).verify_materials([material], LEGACY_DIGEST)
        assert_invalid(result, "no OIDC issuer")
        assert result.issuer is None and result.subject == "flavio@castelli.me"
    assert_invalid(verifier().verify_materials([material], OTHER_DIGEST), "docker-manifest-digest")


def test_legacy_2021_leaf_needs_the_2021_ca(sigstore: Path, tmp_path: Path) -> None:
    document = json.loads((sigstore / "trusted_root.production.json").read_text())
    del document["certificateAuthorities"][0]
    root = tmp_path / "without-2021.json"
    root.write_text(json.dumps(document))
    material = simplesigning(sigstore / "more" / "simplesigning" / "legacy-2021-root-signed")
    assert_invalid(
        verifier(root=root).verify_materials([material], LEGACY_DIGEST), "does not chain"
    )


def test_private_pki_is_never_trusted(sigstore: Path) -> None:
    directory = sigstore / "more" / "simplesigning" / "private-pki"
    digest = "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    material = simplesigning(directory)
    assert f'"{digest}"'.encode() in material.payload  # signed for this very manifest
    result = verifier(TrustedIdentity("", "*")).verify_materials([material], digest)
    assert_invalid(result, "does not chain to a Fulcio CA")
    assert result.issuer is None


def test_key_signed_is_unsigned(sigstore: Path) -> None:
    directory = sigstore / "more" / "simplesigning" / "key-signed"
    material = simplesigning(directory)
    digest = "sha256:" + hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    # The signature is genuine under cosign.pub ...
    key = serialization.load_pem_public_key((directory / "cosign.pub").read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(material.annotations["dev.cosignproject.cosign/signature"])
    key.verify(signature, material.payload, ec.ECDSA(hashes.SHA256()))
    # ... but it is not keyless.
    result = verifier().verify_materials([material], digest)
    assert result.status is SignatureStatus.UNSIGNED
    assert result.reason is not None and "certificate" in result.reason


def test_no_materials_is_unsigned() -> None:
    result = verifier().verify_materials([], PLUGIN_DIGEST)
    assert result.status is SignatureStatus.UNSIGNED
    assert result.reason is not None and "no signatures" in result.reason


# -- real material: Sigstore bundles ---------------------------------------------------


def test_certificate_issuer_extensions(sigstore: Path) -> None:
    from cryptography import x509

    pem = json.loads(
        (sigstore / "simplesigning" / "fulcio-rekor-valid" / "annotations.json").read_text()
    )["dev.sigstore.cosign/certificate"]
    assert certificate_issuer(x509.load_pem_x509_certificate(pem.encode())) == GITHUB_OAUTH


# -- material from the test signer -----------------------------------------------------


def signer_verifier(signer: TestSigner, *identities: TrustedIdentity) -> CosignVerifier:
    return verifier(*identities, root=signer.trusted_root_path)


def test_signer_simplesigning_round_trip(signer: TestSigner) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    result = signer_verifier(signer).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert result == VerificationResult(SignatureStatus.VERIFIED, GITHUB_ACTIONS, DRASI_SUBJECT)
    # The test root is not the production root.
    production = verifier().verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert_invalid(production, "not in the trusted root")


@pytest.mark.parametrize(
    "key",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "rsa"],
)
def test_signer_other_key_types(signer: TestSigner, key: Callable[[], Any]) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT, key=key()
    )
    check = signer_verifier(signer)
    assert check.verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    ).verified


def test_signer_email_identity(signer: TestSigner) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, "https://accounts.example", "ci@example.com"
    )
    material = SimpleSigningMaterial(payload, annotations)
    trusted = signer_verifier(signer, TrustedIdentity("https://accounts.example", "*@example.com"))
    assert trusted.verify_materials([material], PLUGIN_DIGEST).subject == "ci@example.com"
    assert trusted.verify_materials([material], PLUGIN_DIGEST).verified
    other = signer_verifier(signer, TrustedIdentity("https://accounts.example", "*@example.org"))
    assert_invalid(other.verify_materials([material], PLUGIN_DIGEST), "not trusted")


def test_leaf_issued_directly_by_root(signer: TestSigner) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT, signed_by_root=True
    )
    material = SimpleSigningMaterial(payload, annotations)
    assert signer_verifier(signer).verify_materials([material], PLUGIN_DIGEST).verified


SIMPLESIGNING_FAILURES: list[tuple[dict[str, Any], str]] = [
    ({"expired": True}, "not valid at signing time"),
    ({"wrong_log_key": True}, "signed entry timestamp does not verify"),
    ({"unknown_log": True}, "not in the trusted root"),
    ({"include_issuer": False}, "no OIDC issuer"),
    ({"include_bundle": False}, "no trusted signing time"),
    ({"code_signing": False}, "codeSigning"),
    ({"integrated_time": 4_000_000_000}, "in the future"),
]


@pytest.mark.parametrize(("options", "pattern"), SIMPLESIGNING_FAILURES)
def test_signer_simplesigning_failures(
    signer: TestSigner, options: dict[str, Any], pattern: str
) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT, **options
    )
    result = signer_verifier(signer).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert_invalid(result, pattern)


def test_signer_tampered_and_misbound(signer: TestSigner) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    check = signer_verifier(signer)
    tampered = payload.replace(b"postgres", b"postgrez")
    assert_invalid(
        check.verify_materials([SimpleSigningMaterial(tampered, annotations)], PLUGIN_DIGEST),
        "signature does not verify",
    )
    assert_invalid(
        check.verify_materials([SimpleSigningMaterial(payload, annotations)], OTHER_DIGEST),
        "docker-manifest-digest mismatch",
    )
    wrong = signer.sign_simplesigning(
        PLUGIN_REF,
        PLUGIN_DIGEST,
        GITHUB_ACTIONS,
        "https://github.com/someone-else/x/y@refs/heads/main",
    )
    result = check.verify_materials([SimpleSigningMaterial(*wrong)], PLUGIN_DIGEST)
    assert_invalid(result, "not trusted")
    assert result.subject == "https://github.com/someone-else/x/y@refs/heads/main"
    assert result.issuer == GITHUB_ACTIONS


def test_foreign_ca_is_not_trusted(signer: TestSigner, tmp_path: Path) -> None:
    """Same log, another CA: the leaf (and the root shipped in its chain
    annotation) is not trusted."""
    other = TestSigner(tmp_path / "other")
    document = signer.trusted_root_document()
    document["certificateAuthorities"] = other.trusted_root_document()["certificateAuthorities"]
    root = tmp_path / "foreign-ca.json"
    root.write_text(json.dumps(document))
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    assert "BEGIN CERTIFICATE" in annotations["dev.sigstore.cosign/chain"]
    result = verifier(root=root).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert_invalid(result, "does not chain to a Fulcio CA")


def test_ca_validity_window_applies(signer: TestSigner, tmp_path: Path) -> None:
    document = signer.trusted_root_document()
    document["certificateAuthorities"][0]["validFor"] = {
        "start": "2000-01-01T00:00:00Z",
        "end": "2001-01-01T00:00:00.5Z",
    }
    root = tmp_path / "old-ca.json"
    root.write_text(json.dumps(document))
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    result = verifier(root=root).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert_invalid(result, "does not chain")


def test_log_validity_window_applies(signer: TestSigner, tmp_path: Path) -> None:
    document = signer.trusted_root_document()
    document["tlogs"][0]["publicKey"]["validFor"] = {"start": "2099-01-01T00:00:00Z"}
    root = tmp_path / "future-log.json"
    root.write_text(json.dumps(document))
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    result = verifier(root=root).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert_invalid(result, "outside the log's validity")


# -- several materials -----------------------------------------------------------------


def test_any_passing_material_wins(signer: TestSigner) -> None:
    check = signer_verifier(signer)
    bad_payload, bad_annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT, expired=True
    )
    good = signer.sign_simplesigning(PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT)
    materials: list[SignatureMaterial] = [
        SimpleSigningMaterial(bad_payload, bad_annotations),
        BundleMaterial(b"{not json"),
        SimpleSigningMaterial(*good),
    ]
    assert check.verify_materials(materials, PLUGIN_DIGEST).verified
    assert check.verify_materials(materials[:2], PLUGIN_DIGEST).status is SignatureStatus.INVALID


def test_key_signed_next_to_keyless(sigstore: Path, signer: TestSigner) -> None:
    key_signed = simplesigning(sigstore / "more" / "simplesigning" / "key-signed")
    good = SimpleSigningMaterial(
        *signer.sign_simplesigning(PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT)
    )
    check = signer_verifier(signer)
    assert check.verify_materials([key_signed, good], PLUGIN_DIGEST).verified
    bad = SimpleSigningMaterial(good.payload + b" ", good.annotations)
    assert_invalid(check.verify_materials([key_signed, bad], PLUGIN_DIGEST), "signature")


# -- malformed input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda a: a.update({"dev.sigstore.cosign/certificate": "not pem"}),
        lambda a: a.update({"dev.sigstore.cosign/chain": "-----BEGIN CERTIFICATE-----\nAA==\n"}),
        lambda a: a.pop("dev.cosignproject.cosign/signature"),
        lambda a: a.update({"dev.cosignproject.cosign/signature": "***"}),
        lambda a: a.update({"dev.sigstore.cosign/bundle": "{"}),
        lambda a: a.update({"dev.sigstore.cosign/bundle": "[]"}),
        lambda a: a.update({"dev.sigstore.cosign/bundle": '{"Payload": {"body": 3}}'}),
    ],
)
def test_malformed_annotations_are_invalid(
    signer: TestSigner, mutate: Callable[[dict[str, str]], Any]
) -> None:
    payload, annotations = signer.sign_simplesigning(
        PLUGIN_REF, PLUGIN_DIGEST, GITHUB_ACTIONS, DRASI_SUBJECT
    )
    mutate(annotations)
    result = signer_verifier(signer).verify_materials(
        [SimpleSigningMaterial(payload, annotations)], PLUGIN_DIGEST
    )
    assert result.status is SignatureStatus.INVALID
    assert result.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bundle_bytes_never_raise(data: bytes) -> None:
    result = verifier().verify_materials([BundleMaterial(data)], PLUGIN_DIGEST)
    assert result.status is SignatureStatus.INVALID


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_byte_flips_in_real_material_never_raise(data: st.DataObject) -> None:
    sigstore = _sigstore_dir()
    choice = data.draw(st.sampled_from(["bundle", "annotations"]))
    if choice == "bundle":
        raw = bytearray((sigstore / "bundles" / "happy-path-v0.3.sigstore.json").read_bytes())
    else:
        directory = sigstore / "simplesigning" / "fulcio-rekor-valid"
        raw = bytearray((directory / "annotations.json").read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    check = verifier(CONFORMANCE, MITR)
    if choice == "bundle":
        result = check.verify_materials([BundleMaterial(bytes(raw))], OTHER_DIGEST)
    else:
        try:
            annotations = json.loads(bytes(raw))
        except ValueError:
            return
        if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            return
        payload = (sigstore / "simplesigning" / "fulcio-rekor-valid" / "payload.json").read_bytes()
        result = check.verify_materials([SimpleSigningMaterial(payload, annotations)], OTHER_DIGEST)
    # Bound to another digest, so nothing may verify; nothing may raise either.
    assert result.status in (SignatureStatus.INVALID, SignatureStatus.UNSIGNED)


@pytest.mark.parametrize("digest", ["sha512:" + "a" * 128, "sha256:ABC", "0489474d", ""])
def test_unsupported_digest(digest: str) -> None:
    assert_invalid(
        verifier().verify_materials([BundleMaterial(b"{}")], digest), "unsupported artifact digest"
    )


# -- verify_plugin -------------------------------------------------------------------


def test_verify_plugin_disabled_needs_no_client() -> None:
    check = verifier(enabled=False)
    result = anyio.run(check.verify_plugin, "source/postgres:0.1.8", None)
    assert result == VerificationResult(SignatureStatus.UNSIGNED, reason="verification disabled")


def test_verify_plugin_without_client() -> None:
    check = verifier()
    with pytest.raises(RegistryError, match=r"source/postgres.*no registry client"):
        anyio.run(check.verify_plugin, "source/postgres:0.1.8", PLUGIN_DIGEST)


def test_bad_trusted_root_path_fails_early(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"missing\.json"):
        verifier(root=tmp_path / "missing.json")
