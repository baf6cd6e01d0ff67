"""download_plugin with a CosignVerifier, end to end, through real registries:
simplesigning signatures minted under a test CA and transparency log, and real
Sigstore bundles stored in both bundle layouts (referrers API, referrers tag)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from mini_registry import MiniRegistry
from registry_helpers import (
    metadata,
    push_bundle,
    push_plugin,
    push_referrers_tag,
    push_simplesigning,
)
from registry_servers import RegistryServer, mini_config
from signing import TestSigner

from drasi_host.errors import IntegrityError, RegistryError, SignatureVerificationError
from drasi_host.registry.artifact import OCI_MANIFEST, Descriptor, sha256_digest
from drasi_host.registry.cosign import (
    CosignVerifier,
    SignatureStatus,
    TrustedIdentity,
    VerificationConfig,
)
from drasi_host.registry.oci import OciRegistryClient, RegistryConfig

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/drasi-project/drasi-core/.github/workflows/publish.yml@refs/tags/v1"
STRANGER = "https://github.com/someone-else/fork/.github/workflows/publish.yml@refs/heads/main"
TAG = "0.1.0-linux-amd64"
DATA = Path(__file__).parent / "data" / "sigstore"
REAL_BUNDLE = DATA / "bundles" / "happy-path-intoto-in-dsse-v3.sigstore.json"
PRODUCTION_ROOT = DATA / "trusted_root.production.json"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("e2e-sigstore"))


def _verifier(signer: TestSigner, enabled: bool = True) -> CosignVerifier:
    return CosignVerifier(
        VerificationConfig(
            enabled=enabled,
            trusted_identities=[TrustedIdentity(ISSUER, "https://github.com/drasi-project/*")],
            trusted_root=signer.trusted_root_path,
        )
    )


async def _publish(client: OciRegistryClient, kind: str, binary: bytes) -> tuple[str, Descriptor]:
    ref = f"source/{kind}:{TAG}"
    digest = await push_plugin(client, ref, binary, metadata(kind=kind))
    size = len((await client.get_manifest(ref)).raw)
    return f"{client.config.default_registry}/source/{kind}", Descriptor(OCI_MANIFEST, digest, size)


async def _sign(
    layout: str,
    client: OciRegistryClient,
    signer: TestSigner | None,
    repo: str,
    subject: Descriptor,
    *,
    signed_digest: str | None = None,
    identity: str = SUBJECT,
) -> None:
    digest = signed_digest or subject.digest
    if layout == "simplesigning":
        assert signer is not None
        payload, annotations = signer.sign_simplesigning(repo, digest, ISSUER, identity)
        await push_simplesigning(client, repo, subject.digest, [(payload, annotations)])
        return
    # A real Sigstore bundle (signed for data/sigstore/bundles/a.txt): it can
    # only ever be a signature of another artifact copied onto this one.
    entry = await push_bundle(client, repo, subject, REAL_BUNDLE.read_bytes())
    if layout == "referrers-tag":
        await push_referrers_tag(client, repo, subject.digest, [entry])
    # "referrers-api": the server indexes the manifest by its subject


def _config(
    layout: str, registry: RegistryServer, mini_registry_factory: Callable[..., MiniRegistry]
) -> RegistryConfig:
    if layout == "referrers-api":
        return mini_config(mini_registry_factory(referrers=True))
    return registry.config()


BUNDLE_LAYOUTS = ["referrers-api", "referrers-tag"]


@pytest.mark.registry
@pytest.mark.parametrize("layout", ["simplesigning"])
async def test_signed_download(
    layout: str,
    registry: RegistryServer,
    mini_registry_factory: Callable[..., MiniRegistry],
    signer: TestSigner,
    plugin_binary: bytes,
    tmp_path: Path,
) -> None:
    config = _config(layout, registry, mini_registry_factory)
    async with OciRegistryClient(config, verifier=_verifier(signer)) as client:
        repo, subject = await _publish(client, "signed", plugin_binary)
        await _sign(layout, client, signer, repo, subject)
        result = await client.download_plugin(f"source/signed:{TAG}", tmp_path)
    assert result.verification is not None
    assert result.verification.status is SignatureStatus.VERIFIED, result.verification
    assert (result.verification.issuer, result.verification.subject) == (ISSUER, SUBJECT)
    assert result.digest == subject.digest
    assert result.path.read_bytes() == plugin_binary


@pytest.mark.registry
@pytest.mark.parametrize("layout", BUNDLE_LAYOUTS)
async def test_real_bundle_of_another_artifact_is_refused(
    layout: str,
    registry: RegistryServer,
    mini_registry_factory: Callable[..., MiniRegistry],
    plugin_binary: bytes,
    tmp_path: Path,
) -> None:
    """Found by discovery in either bundle layout and checked by sigstore-python:
    the signature itself is genuine, but it names another artifact (digest
    binding) or, under the default policy, an untrusted signer."""
    config = _config(layout, registry, mini_registry_factory)
    dest = tmp_path / "plugins"
    conformance = CosignVerifier(
        VerificationConfig(
            trusted_identities=[
                TrustedIdentity(ISSUER, "https://github.com/sigstore-conformance/*")
            ],
            trusted_root=PRODUCTION_ROOT,
        )
    )
    async with OciRegistryClient(config, verifier=conformance) as client:
        repo, subject = await _publish(client, "borrowed", plugin_binary)
        await _sign(layout, client, None, repo, subject)
        with pytest.raises(SignatureVerificationError, match="do not include") as info:
            await client.download_plugin(f"source/borrowed:{TAG}", dest)
        assert info.value.result.status is SignatureStatus.INVALID
    default = CosignVerifier(VerificationConfig(trusted_root=PRODUCTION_ROOT))
    async with OciRegistryClient(config, verifier=default) as client:
        with pytest.raises(SignatureVerificationError, match="not trusted"):
            await client.download_plugin(f"source/borrowed:{TAG}", dest)
    assert not dest.exists()


@pytest.mark.registry
@pytest.mark.parametrize("layout", ["simplesigning"])
async def test_refusals_write_nothing(
    layout: str,
    registry: RegistryServer,
    mini_registry_factory: Callable[..., MiniRegistry],
    signer: TestSigner,
    plugin_binary: bytes,
    tmp_path: Path,
) -> None:
    config = _config(layout, registry, mini_registry_factory)
    dest = tmp_path / "plugins"
    async with OciRegistryClient(config, verifier=_verifier(signer)) as client:
        # an untrusted identity
        repo, subject = await _publish(client, "stranger", plugin_binary)
        await _sign(layout, client, signer, repo, subject, identity=STRANGER)
        with pytest.raises(SignatureVerificationError) as info:
            await client.download_plugin(f"source/stranger:{TAG}", dest)
        assert info.value.result.status is SignatureStatus.INVALID
        assert info.value.result.subject == STRANGER

        # a valid signature of another artifact copied onto this one
        other = await push_plugin(
            client, f"source/copied:other-{TAG}", b"other", metadata(kind="copied")
        )
        repo, subject = await _publish(client, "copied", plugin_binary)
        await _sign(layout, client, signer, repo, subject, signed_digest=other)
        with pytest.raises(SignatureVerificationError) as info:
            await client.download_plugin(f"source/copied:{TAG}", dest)
        assert info.value.result.status is SignatureStatus.INVALID

        # no signature at all
        await _publish(client, "unsigned", plugin_binary)
        with pytest.raises(SignatureVerificationError, match="unsigned") as info:
            await client.download_plugin(f"source/unsigned:{TAG}", dest)
        assert info.value.result.status is SignatureStatus.UNSIGNED
    assert not dest.exists()


@pytest.mark.registry
async def test_tampered_layer_with_valid_signature(
    registry: RegistryServer, signer: TestSigner, tmp_path: Path
) -> None:
    binary = os.urandom(100_000)
    async with OciRegistryClient(registry.config(), verifier=_verifier(signer)) as client:
        repo, subject = await _publish(client, "swapped", binary)
        await _sign("simplesigning", client, signer, repo, subject)
        hex_digest = sha256_digest(binary).partition(":")[2]
        blob = (
            registry.root
            / "storage"
            / "docker"
            / "registry"
            / "v2"
            / "blobs"
            / "sha256"
            / hex_digest[:2]
            / hex_digest
            / "data"
        )
        blob.write_bytes(os.urandom(100_000))
        with pytest.raises(IntegrityError, match="does not match its digest"):
            await client.download_plugin(f"source/swapped:{TAG}", tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.registry
async def test_disabled_verification(
    registry: RegistryServer, signer: TestSigner, plugin_binary: bytes, tmp_path: Path
) -> None:
    async with OciRegistryClient(
        registry.config(), verifier=_verifier(signer, enabled=False)
    ) as client:
        await _publish(client, "plain", plugin_binary)
        result = await client.download_plugin(f"source/plain:{TAG}", tmp_path)
    assert result.verification is not None
    assert result.verification.status is SignatureStatus.UNSIGNED
    assert result.path.read_bytes() == plugin_binary


@pytest.mark.registry
async def test_registry_error_during_verification_is_an_error(
    mini_registry_factory: Callable[..., MiniRegistry],
    signer: TestSigner,
    plugin_binary: bytes,
    tmp_path: Path,
) -> None:
    server = mini_registry_factory(referrers=True)
    async with OciRegistryClient(
        mini_config(server, max_retries=1), verifier=_verifier(signer)
    ) as client:
        repo, subject = await _publish(client, "flaky", plugin_binary)
        await _sign("simplesigning", client, signer, repo, subject)
        server.fail("GET", ".sig", 2, 503)  # both attempts of one lookup
        with pytest.raises(RegistryError, match="HTTP 503") as info:
            await client.download_plugin(f"source/flaky:{TAG}", tmp_path)
        assert not isinstance(info.value, SignatureVerificationError)
        result = await client.download_plugin(f"source/flaky:{TAG}", tmp_path)
        assert result.verification is not None and result.verification.verified
    assert os.listdir(tmp_path) == [result.path.name]
