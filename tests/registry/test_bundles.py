"""Sigstore bundles, verified offline by sigstore-python, with real material.

Every bundle outcome listed in ``data/sigstore/README.md``,
``data/sigstore/more/README.md`` and ``data/sigstore/rekor2/README.md``, the
Rekor v2 bundles, and derived tampering: inclusion proofs with a flipped
hash, a changed checkpoint size or no proof at all, altered SETs, payloads and
RFC 3161 timestamps: each must be refused.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_helpers import push_bundle, push_referrers_tag
from registry_servers import RegistryServer

from drasi_host.registry.artifact import OCI_MANIFEST, Descriptor
from drasi_host.registry.cosign import (
    BundleMaterial,
    CosignVerifier,
    SignatureMaterial,
    SignatureStatus,
    TrustedIdentity,
    VerificationConfig,
    VerificationResult,
)
from drasi_host.registry.oci import OciRegistryClient

DATA = Path(__file__).parent / "data" / "sigstore"
PRODUCTION = DATA / "trusted_root.production.json"
STAGING = DATA / "trusted_root.staging.json"
PUBLIC_GOOD = DATA / "more" / "trusted_root.public-good.json"

GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
CONFORMANCE = TrustedIdentity(GITHUB_ACTIONS, "https://github.com/sigstore-conformance/*")
JKU = TrustedIdentity(GITHUB_OAUTH, "jku@goto.fi")
EVERYONE = (CONFORMANCE, JKU, TrustedIdentity("https://accounts.google.com", "*"))

A_TXT_DIGEST = "sha256:" + hashlib.sha256((DATA / "bundles" / "a.txt").read_bytes()).hexdigest()
REKOR2_TXT_DIGEST = (
    "sha256:" + hashlib.sha256((DATA / "rekor2" / "staging-rekor-v2.txt").read_bytes()).hexdigest()
)
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
OTHER_DIGEST = "sha256:" + "ab" * 32

REKOR2_MSG = DATA / "rekor2" / "staging-rekor-v2.txt.sigstore.json"
REKOR2_DSSE = DATA / "rekor2" / "a.dsse.staging-rekor-v2.txt.sigstore.json"
V1_DSSE = DATA / "bundles" / "happy-path-intoto-in-dsse-v3.sigstore.json"
V1_MSG = DATA / "bundles" / "happy-path-v0.3.sigstore.json"


def verifier(*identities: TrustedIdentity, root: Path | None = PRODUCTION) -> CosignVerifier:
    return CosignVerifier(VerificationConfig(trusted_identities=identities, trusted_root=root))


def material(path: Path) -> BundleMaterial:
    return BundleMaterial(path.read_bytes())


def document(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def encode(doc: dict[str, Any]) -> BundleMaterial:
    return BundleMaterial(json.dumps(doc).encode())


def assert_refused(result: VerificationResult, pattern: str | None = None) -> None:
    assert result.status is SignatureStatus.INVALID, result
    assert not result.verified
    assert result.reason
    if pattern is not None:
        assert re.search(pattern, result.reason, re.IGNORECASE), result.reason


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Verification is offline: any attempt to resolve a name or open a
    connection (a TUF refresh, a Rekor lookup) fails the test."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> Any:
        attempts.append(args)
        raise AssertionError(f"network access attempted during verification: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == []


# -- the expected outcomes of the READMEs ------------------------------------------


@pytest.mark.parametrize("path", [V1_DSSE, V1_MSG])
def test_happy_path_bundles(path: Path) -> None:
    bundle = material(path)
    assert verifier(CONFORMANCE).verify_materials([bundle], A_TXT_DIGEST) == VerificationResult(
        SignatureStatus.VERIFIED, GITHUB_ACTIONS, BEACON
    )
    untrusted = verifier().verify_materials([bundle], A_TXT_DIGEST)
    assert_refused(untrusted, "not trusted")
    assert (untrusted.issuer, untrusted.subject) == (GITHUB_ACTIONS, BEACON)
    # A real signature does not bind to an unrelated plugin digest.
    assert_refused(
        verifier(CONFORMANCE).verify_materials([bundle], OTHER_DIGEST),
        "not sha256:|do not include sha256:",
    )


def test_public_good_root_is_accepted() -> None:
    """An older root snapshot (no Rekor v2 log, fractional-second times)."""
    result = verifier(CONFORMANCE, root=PUBLIC_GOOD).verify_materials(
        [material(V1_MSG)], A_TXT_DIGEST
    )
    assert result.verified


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("bundles/dsse-invalid-sig_fail.sigstore.json", "invalid signature"),
        ("bundles/dsse-mismatch-envelope_fail.sigstore.json", "payload hash does not match"),
        ("more/bundles/dsse-mismatch-sig_fail.sigstore.json", "signatures do not match"),
        ("more/bundles/signature-mismatch_fail.sigstore.json", "signature is invalid"),
        ("more/bundles/integrated-time-in-future_fail.sigstore.json", "not valid at validation"),
        ("bundles/bundle-from-wrong-instance_fail.sigstore.json", "certificate chain"),
    ],
)
def test_failing_bundles(path: str, pattern: str) -> None:
    result = verifier(*EVERYONE).verify_materials([material(DATA / path)], A_TXT_DIGEST)
    assert_refused(result, pattern)
    # The signer is named only when the cryptography held.
    assert result.issuer is None and result.subject is None


def test_wrong_instance_bundle_passes_with_staging_root() -> None:
    bundle = material(DATA / "bundles" / "bundle-from-wrong-instance_fail.sigstore.json")
    assert verifier(CONFORMANCE, root=STAGING).verify_materials(
        [bundle], A_TXT_DIGEST
    ) == VerificationResult(SignatureStatus.VERIFIED, GITHUB_ACTIONS, BEACON)


def test_wrong_instance_bundle_does_not_chain_to_production(tmp_path: Path) -> None:
    # Give the production root the staging logs, so that only the chain is wrong.
    production = document(PRODUCTION)
    production["tlogs"] += document(STAGING)["tlogs"]
    root = tmp_path / "mixed.json"
    root.write_text(json.dumps(production))
    bundle = material(DATA / "bundles" / "bundle-from-wrong-instance_fail.sigstore.json")
    result = verifier(CONFORMANCE, root=root).verify_materials([bundle], A_TXT_DIGEST)
    assert_refused(result, "failed to build timestamp certificate chain")


def test_sigstore_js_provenance() -> None:
    bundle = material(DATA / "more" / "bundles" / "sigstore.js@2.0.0-provenance.sigstore.json")
    statement = json.loads(base64.b64decode(json.loads(bundle.bundle)["dsseEnvelope"]["payload"]))
    assert "sha256" not in statement["subject"][0]["digest"]
    identity = TrustedIdentity(GITHUB_ACTIONS, "https://github.com/sigstore/sigstore-js/*")
    # Its subject has no sha256, so it can never bind to a sha256 artifact
    # (sigstore-python also refuses its intoto 0.0.2 log entry kind).
    assert_refused(verifier(identity).verify_materials([bundle], OTHER_DIGEST))


def test_wheel_bundle() -> None:
    bundle = material(DATA / "more" / "bundles" / "bundle_v3_github.whl.sigstore")
    subject = (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    trailofbits = TrustedIdentity(GITHUB_ACTIONS, "https://github.com/trailofbits/*")
    assert verifier(trailofbits).verify_materials([bundle], WHEEL_DIGEST) == VerificationResult(
        SignatureStatus.VERIFIED, GITHUB_ACTIONS, subject
    )
    default = verifier().verify_materials([bundle], WHEEL_DIGEST)
    assert_refused(default, "not trusted")
    assert (default.issuer, default.subject) == (GITHUB_ACTIONS, subject)
    assert_refused(verifier(trailofbits).verify_materials([bundle], OTHER_DIGEST), "not sha256:")


# -- Rekor v2 (staging): inclusion proof + checkpoint, RFC 3161 time, no SET ---------------


def test_rekor_v2_message_signature() -> None:
    bundle = material(REKOR2_MSG)
    entry = json.loads(bundle.bundle)["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry and "integratedTime" not in entry
    assert verifier(JKU, root=STAGING).verify_materials(
        [bundle], REKOR2_TXT_DIGEST
    ) == VerificationResult(SignatureStatus.VERIFIED, GITHUB_OAUTH, "jku@goto.fi")
    assert_refused(
        verifier(CONFORMANCE, root=STAGING).verify_materials([bundle], REKOR2_TXT_DIGEST),
        "not trusted",
    )
    assert_refused(verifier(JKU).verify_materials([bundle], REKOR2_TXT_DIGEST))
    assert_refused(
        verifier(JKU, root=STAGING).verify_materials([bundle], OTHER_DIGEST), "not sha256:"
    )


def test_rekor_v2_dsse() -> None:
    bundle = material(REKOR2_DSSE)
    assert verifier(CONFORMANCE, root=STAGING).verify_materials(
        [bundle], A_TXT_DIGEST
    ) == VerificationResult(SignatureStatus.VERIFIED, GITHUB_ACTIONS, BEACON)
    assert_refused(
        verifier(CONFORMANCE, root=STAGING).verify_materials([bundle], REKOR2_TXT_DIGEST),
        "do not include",
    )
    assert_refused(
        verifier(JKU, root=STAGING).verify_materials([bundle], A_TXT_DIGEST), "not trusted"
    )
    assert_refused(verifier(CONFORMANCE).verify_materials([bundle], A_TXT_DIGEST))


# -- tampered inclusion proofs, checkpoints, SETs, timestamps, payloads ---------------------


def _flip_b64(value: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _proof(doc: dict[str, Any]) -> dict[str, Any]:
    proof: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    return proof


def _checkpoint_size(doc: dict[str, Any], delta: int) -> None:
    proof = _proof(doc)
    lines = proof["checkpoint"]["envelope"].split("\n")
    lines[1] = str(int(lines[1]) + delta)
    proof["checkpoint"]["envelope"] = "\n".join(lines)


TAMPERINGS: dict[str, Callable[[dict[str, Any]], object]] = {
    "proof hash flipped": lambda d: _proof(d)["hashes"].__setitem__(
        1, _flip_b64(_proof(d)["hashes"][1])
    ),
    "proof root hash flipped": lambda d: _proof(d).update(
        rootHash=_flip_b64(_proof(d)["rootHash"])
    ),
    "proof tree size changed": lambda d: _proof(d).update(
        treeSize=str(int(_proof(d)["treeSize"]) + 1)
    ),
    "checkpoint size changed": lambda d: _checkpoint_size(d, 1),
    "proof log index changed": lambda d: _proof(d).update(
        logIndex=str(int(_proof(d)["logIndex"]) + 1)
    ),
    "proof deleted": lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("inclusionProof"),
    "checkpoint deleted": lambda d: _proof(d).pop("checkpoint"),
    "log entries deleted": lambda d: d["verificationMaterial"].update(tlogEntries=[]),
}


@pytest.mark.parametrize(
    ("path", "root", "identity", "digest"),
    [
        (REKOR2_MSG, STAGING, JKU, REKOR2_TXT_DIGEST),
        (REKOR2_DSSE, STAGING, CONFORMANCE, A_TXT_DIGEST),
        (V1_DSSE, PRODUCTION, CONFORMANCE, A_TXT_DIGEST),
        (V1_MSG, PRODUCTION, CONFORMANCE, A_TXT_DIGEST),
    ],
    ids=["rekor2-msg", "rekor2-dsse", "rekor1-dsse", "rekor1-msg"],
)
@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampered_log_entries_are_refused(
    path: Path, root: Path, identity: TrustedIdentity, digest: str, tampering: str
) -> None:
    check = verifier(identity, root=root)
    assert check.verify_materials([material(path)], digest).verified  # the untouched bundle
    doc = document(path)
    TAMPERINGS[tampering](doc)
    assert_refused(check.verify_materials([encode(doc)], digest))


def test_rekor_v1_set_tampering() -> None:
    doc = document(V1_MSG)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    assert_refused(verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST))
    doc = document(V1_MSG)
    promise = doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip_b64(promise["signedEntryTimestamp"], 20)
    assert_refused(verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST))


@pytest.mark.parametrize("path", [REKOR2_MSG, REKOR2_DSSE])
def test_rfc3161_timestamp_tampering(path: Path) -> None:
    identity = JKU if path == REKOR2_MSG else CONFORMANCE
    digest = REKOR2_TXT_DIGEST if path == REKOR2_MSG else A_TXT_DIGEST
    check = verifier(identity, root=STAGING)
    data = document(path)["verificationMaterial"]["timestampVerificationData"]
    stamp = data["rfc3161Timestamps"][0]["signedTimestamp"]
    raw = base64.b64decode(stamp)
    for index in (len(raw) - 10, len(raw) // 2):
        doc = document(path)
        doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0][
            "signedTimestamp"
        ] = _flip_b64(stamp, index)
        assert_refused(check.verify_materials([encode(doc)], digest))
    doc = document(path)
    doc["verificationMaterial"].pop("timestampVerificationData")
    assert_refused(
        check.verify_materials([encode(doc)], digest), "inclusion promise or signed timestamp"
    )


def test_dsse_payload_byte_flip() -> None:
    doc = document(V1_DSSE)
    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload[10] ^= 0x01
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    assert_refused(verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST))


def test_ct_log_is_required(tmp_path: Path) -> None:
    root = document(PRODUCTION)
    root["ctlogs"] = []
    path = tmp_path / "no-ct.json"
    path.write_text(json.dumps(root))
    assert_refused(
        verifier(CONFORMANCE, root=path).verify_materials([material(V1_MSG)], A_TXT_DIGEST),
        "CTFE keys not found",
    )


def test_sct_signature_is_checked(tmp_path: Path) -> None:
    """The certificate's embedded SCT must verify under the CT log key the
    trusted root names for its log id: another key under the same id fails."""
    root = document(PRODUCTION)
    rekor_key = root["tlogs"][0]["publicKey"]
    for ctlog in root["ctlogs"]:
        ctlog["publicKey"] = dict(ctlog["publicKey"], rawBytes=rekor_key["rawBytes"])
    path = tmp_path / "wrong-ct-key.json"
    path.write_text(json.dumps(root))
    assert_refused(
        verifier(CONFORMANCE, root=path).verify_materials([material(V1_MSG)], A_TXT_DIGEST),
        "SCT",
    )


@pytest.mark.parametrize(
    ("media_type", "ok"),
    [
        ("application/vnd.dev.sigstore.bundle.v0.3+json", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", True),
        ("application/vnd.dev.sigstore.bundle.v0.9+json", False),
        ("application/json", False),
    ],
)
def test_bundle_media_types(media_type: str, ok: bool) -> None:
    doc = document(V1_DSSE)
    doc["mediaType"] = media_type
    result = verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST)
    assert result.verified is ok, result


# -- several materials, malformed input ------------------------------------------------------


def test_any_passing_bundle_wins() -> None:
    materials: list[SignatureMaterial] = [
        material(DATA / "bundles" / "dsse-invalid-sig_fail.sigstore.json"),
        BundleMaterial(b"{not json"),
        material(V1_MSG),
    ]
    check = verifier(CONFORMANCE)
    assert check.verify_materials(materials, A_TXT_DIGEST).verified
    assert check.verify_materials(materials[:2], A_TXT_DIGEST).status is SignatureStatus.INVALID


def test_most_informative_reason_wins() -> None:
    materials: list[SignatureMaterial] = [
        BundleMaterial(b"\x00garbage"),
        material(V1_MSG),  # valid, but its signer is not trusted by default
        material(DATA / "more" / "bundles" / "integrated-time-in-future_fail.sigstore.json"),
    ]
    result = verifier().verify_materials(materials, A_TXT_DIGEST)
    assert_refused(result, re.escape(f"identity {BEACON} (issuer {GITHUB_ACTIONS}) is not trusted"))
    assert result.reason is not None
    assert "not valid JSON" in result.reason and "not valid at validation" in result.reason
    assert result.subject == BEACON


def test_key_signed_bundle_is_unsigned() -> None:
    doc = document(V1_MSG)
    certificate = doc["verificationMaterial"].pop("certificate")
    doc["verificationMaterial"]["publicKey"] = {"hint": certificate["rawBytes"][:16]}
    result = verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST)
    assert result.status is SignatureStatus.UNSIGNED


MALFORMED: list[Callable[[dict[str, Any]], object]] = [
    lambda d: d.pop("verificationMaterial"),
    lambda d: d.pop("dsseEnvelope"),
    lambda d: d.update(mediaType=None),
    lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
    lambda d: d["verificationMaterial"].update(certificate={"rawBytes": 7}),
    lambda d: d["verificationMaterial"].update(tlogEntries={"x": 1}),
    lambda d: d["verificationMaterial"]["tlogEntries"][0].update(integratedTime="soon"),
    lambda d: d["verificationMaterial"]["tlogEntries"][0].update(canonicalizedBody="!!"),
    lambda d: d["verificationMaterial"]["tlogEntries"][0].pop("logId"),
    lambda d: d["dsseEnvelope"].update(signatures=[]),
    lambda d: d["dsseEnvelope"].update(payload="%%%"),
    lambda d: d["dsseEnvelope"].update(payloadType="text/plain"),
    lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=None),
    lambda d: d.update(dsseEnvelope="nope"),
]


@pytest.mark.parametrize("mutate", MALFORMED)
def test_malformed_bundles_are_invalid(mutate: Callable[[dict[str, Any]], object]) -> None:
    doc = copy.deepcopy(document(V1_DSSE))
    mutate(doc)
    assert_refused(verifier(CONFORMANCE).verify_materials([encode(doc)], A_TXT_DIGEST))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bundle_bytes_never_raise(data: bytes) -> None:
    result = verifier().verify_materials([BundleMaterial(data)], A_TXT_DIGEST)
    assert result.status is SignatureStatus.INVALID


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_byte_flips_in_real_bundles_never_verify_elsewhere(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([V1_MSG, V1_DSSE, REKOR2_MSG, REKOR2_DSSE]))
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    root = STAGING if "rekor2" in str(path) else PRODUCTION
    result = verifier(*EVERYONE, root=root).verify_materials(
        [BundleMaterial(bytes(raw))], OTHER_DIGEST
    )
    assert result.status is SignatureStatus.INVALID


def test_a_certificate_with_a_broken_version_field_is_invalid() -> None:
    """One flip found by the property above: the leaf certificate's version
    becomes 10, which cryptography reports as ``InvalidVersion`` (not a
    ``ValueError``); the bundle is refused like any malformed one."""
    raw = bytearray(REKOR2_DSSE.read_bytes())
    raw[150] ^= 2
    result = verifier(*EVERYONE, root=STAGING).verify_materials(
        [BundleMaterial(bytes(raw))], OTHER_DIGEST
    )
    assert result.status is SignatureStatus.INVALID
    assert "malformed" in (result.reason or "")


# -- through a real registry: discovery, then sigstore-python -----------------------------------


@pytest.mark.anyio
async def test_bundle_found_in_registry_and_verified(
    registry: RegistryServer, no_network: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the registry is reached over the loopback network
    async with OciRegistryClient(registry.config()) as client:
        repo = f"{client.config.default_registry}/signed/atxt"
        subject = Descriptor(OCI_MANIFEST, A_TXT_DIGEST, 9)
        entry = await push_bundle(client, repo, subject, V1_DSSE.read_bytes())
        await push_referrers_tag(client, repo, A_TXT_DIGEST, [entry])
        check = CosignVerifier(
            VerificationConfig(trusted_identities=[CONFORMANCE], trusted_root=PRODUCTION), client
        )
        assert await check.verify_plugin(repo, A_TXT_DIGEST) == VerificationResult(
            SignatureStatus.VERIFIED, GITHUB_ACTIONS, BEACON
        )
        result = await CosignVerifier(
            VerificationConfig(trusted_root=PRODUCTION), client
        ).verify_plugin(repo, A_TXT_DIGEST)
        assert_refused(result, "not trusted")
    no_network.clear()
