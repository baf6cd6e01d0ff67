"""Install → lock → load against the real registry, and every way a plugin
directory can disagree with its lockfile.

Plugins are real fixture libraries (``plugins_fixture``) published in the
exact artifact format, installed by ``PluginInstaller`` (signatures verified:
simplesigning under a test CA and log), and loaded by ``PluginLoader`` with a
lockfile.  A refused file must never be ``dlopen``ed: it must not appear in
the process's memory maps.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from registry_helpers import metadata, push_plugin, push_simplesigning
from registry_servers import RegistryServer
from signing import TestSigner

from drasi_host import (
    CallbackContext,
    IntegrityStatus,
    PluginIntegrityError,
    PluginLoader,
    PluginLoaderConfig,
    PluginLockfile,
)
from drasi_host import loader as loader_module
from drasi_host.errors import (
    IntegrityError,
    RegistryAuthError,
    RegistryNotFoundError,
    RegistryTransportError,
    SignatureVerificationError,
)
from drasi_host.registry import (
    CosignVerifier,
    OciRegistryClient,
    PluginInstaller,
    RegistryAuth,
    RegistryConfig,
    TrustedIdentity,
    VerificationConfig,
)
from drasi_host.registry.artifact import sha256_digest
from drasi_host.registry.cli import add_commands

pytestmark = [pytest.mark.registry, pytest.mark.anyio]

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/drasi-project/drasi-core/.github/workflows/publish.yml@refs/tags/v1"
TAG = "0.1.0-linux-amd64"
KINDS = ("alpha", "beta")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("install-sigstore"))


@pytest.fixture
def plugin_library(fixture_plugins: dict[str, Path]) -> bytes:
    return fixture_plugins["source"].read_bytes()


def _verifier(signer: TestSigner) -> CosignVerifier:
    return CosignVerifier(
        VerificationConfig(
            trusted_identities=[TrustedIdentity(ISSUER, "https://github.com/drasi-project/*")],
            trusted_root=signer.trusted_root_path,
        )
    )


async def _publish_signed(
    client: OciRegistryClient, signer: TestSigner, kind: str, binary: bytes, tag: str = TAG
) -> str:
    digest = await push_plugin(client, f"source/{kind}:{tag}", binary, metadata(kind=kind))
    repo = f"{client.config.default_registry}/source/{kind}"
    payload, annotations = signer.sign_simplesigning(repo, digest, ISSUER, SUBJECT)
    await push_simplesigning(client, repo, digest, [(payload, annotations)])
    return digest


@pytest.fixture
async def client(registry: RegistryServer, signer: TestSigner) -> AsyncIterator[OciRegistryClient]:
    async with OciRegistryClient(registry.config(), verifier=_verifier(signer)) as c:
        yield c


def _mapped(path: Path) -> bool:
    """Whether ``path`` was dlopened: the loader opened it, or (where there is
    /proc) it is mapped into this process."""
    target = str(path.resolve())
    if target in loader_module._libraries:
        return True
    maps = Path("/proc/self/maps")
    return maps.exists() and any(
        line.rstrip().endswith(target) for line in maps.read_text().splitlines()
    )


def _loader(plugin_dir: Path) -> PluginLoader:
    return PluginLoader(PluginLoaderConfig(plugin_dir, lockfile=plugin_dir / "plugins.lock"))


async def _install_all(
    client: OciRegistryClient, signer: TestSigner, plugin_dir: Path, binary: bytes
) -> PluginInstaller:
    for kind in KINDS:
        await _publish_signed(client, signer, kind, binary)
    installer = PluginInstaller(
        client, plugin_dir, PluginLockfile.load(plugin_dir / "plugins.lock")
    )
    for kind in KINDS:
        await installer.install(f"source/{kind}:0.1.0")
    return installer


# -- install → lock → load ----------------------------------------------------------------


async def test_install_lock_load(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    installer = await _install_all(client, signer, plugin_dir, plugin_library)
    entries = installer.list()
    assert [e.file_name for e in entries] == [f"libdrasi_source_{k}.so" for k in KINDS]
    for entry in entries:
        assert entry.file_sha256 == sha256_digest(plugin_library).partition(":")[2]
        assert entry.digest.startswith("sha256:")
        assert entry.reference.endswith(f"/source/{entry.file_name[16:-3]}:0.1.0")
        assert (entry.verification.status, entry.verification.issuer) == ("verified", ISSUER)
        assert entry.verification.subject == SUBJECT
        assert entry.installed_at.endswith("+00:00")
    # Human-readable, reloadable, written atomically (no temporary files left).
    text = (plugin_dir / "plugins.lock").read_text()
    assert json.loads(text)["lockfile_version"] == 1
    assert entries[0].file_sha256 in text and "\n  " in text
    assert sorted(os.listdir(plugin_dir)) == [
        "libdrasi_source_alpha.so",
        "libdrasi_source_beta.so",
        "plugins.lock",
    ]
    assert PluginLockfile.load(plugin_dir / "plugins.lock").entries() == entries

    plugins = _loader(plugin_dir).load_all(CallbackContext("install-test"))
    try:
        assert [p.path.name for p in plugins] == [e.file_name for e in entries]
        assert all(p.source_plugins for p in plugins)
        assert all(_mapped(p.path) for p in plugins)  # what the refusal tests check is absent
    finally:
        for plugin in plugins:
            await plugin.aclose()


async def test_changed_file_is_refused_before_dlopen(
    client: OciRegistryClient,
    signer: TestSigner,
    plugin_library: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugin_dir = tmp_path / "plugins"
    await _install_all(client, signer, plugin_dir, plugin_library)
    changed = plugin_dir / "libdrasi_source_alpha.so"
    with open(changed, "ab") as fh:
        fh.write(b"\0")
    loader = _loader(plugin_dir)
    with pytest.raises(PluginIntegrityError, match="tampered") as info:
        loader.load_plugin(changed, CallbackContext("t"))
    assert info.value.plugin == changed.name
    assert not _mapped(changed)
    with caplog.at_level(logging.ERROR, logger="drasi_host.loader"):
        plugins = loader.load_all(CallbackContext("t"))
    try:
        assert [p.path.name for p in plugins] == ["libdrasi_source_beta.so"]
    finally:
        for plugin in plugins:
            await plugin.aclose()
    assert any(
        "libdrasi_source_alpha.so" in r.getMessage() and "tampered" in r.getMessage()
        for r in caplog.records
    )
    assert not _mapped(changed)
    assert (
        PluginLockfile.load(plugin_dir / "plugins.lock").check(changed) is IntegrityStatus.TAMPERED
    )


async def test_unlisted_file_is_refused(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    await _install_all(client, signer, plugin_dir, plugin_library)
    stray = plugin_dir / "libdrasi_source_stray.so"
    shutil.copyfile(plugin_dir / "libdrasi_source_alpha.so", stray)
    lock = PluginLockfile.load(plugin_dir / "plugins.lock")
    assert lock.check(stray) is IntegrityStatus.NO_ENTRY
    with pytest.raises(PluginIntegrityError, match="no_entry"):
        _loader(plugin_dir).load_plugin(stray, CallbackContext("t"))
    plugins = _loader(plugin_dir).load_all(CallbackContext("t"))
    try:
        assert "libdrasi_source_stray.so" not in [p.path.name for p in plugins]
        assert len(plugins) == 2
    finally:
        for plugin in plugins:
            await plugin.aclose()
    assert not _mapped(stray)


async def test_missing_lockfile_refuses_everything(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    await _install_all(client, signer, plugin_dir, plugin_library)
    (plugin_dir / "plugins.lock").unlink()
    assert _loader(plugin_dir).load_all(CallbackContext("t")) == []
    assert not any(_mapped(p) for p in plugin_dir.iterdir())


async def test_entry_whose_file_is_missing_then_install_locked(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    installer = await _install_all(client, signer, plugin_dir, plugin_library)
    gone = plugin_dir / "libdrasi_source_beta.so"
    gone.unlink()
    lock = PluginLockfile.load(plugin_dir / "plugins.lock")
    assert lock.check(gone) is IntegrityStatus.MISSING
    with pytest.raises(PluginIntegrityError, match="missing"):
        _loader(plugin_dir).load_plugin(gone, CallbackContext("t"))
    reports = {r.file_name: r.status for r in lock.check_directory(plugin_dir)}
    assert reports == {
        "libdrasi_source_alpha.so": IntegrityStatus.OK,
        "libdrasi_source_beta.so": IntegrityStatus.MISSING,
    }
    before = (plugin_dir / "plugins.lock").read_bytes()
    restored = await installer.install_locked()
    assert [e.file_name for e in restored] == ["libdrasi_source_beta.so"]
    assert gone.read_bytes() == plugin_library
    assert (plugin_dir / "plugins.lock").read_bytes() == before
    assert await installer.install_locked() == []  # everything is in place now


async def test_install_locked_takes_the_locked_digest_not_the_tag(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    await _publish_signed(client, signer, "moving", plugin_library)
    installer = PluginInstaller(client, plugin_dir)
    first = await installer.install("source/moving:0.1.0")
    # The tag moves to another (signed) build; the lockfile still names the first.
    newer = plugin_library + b"\0newer build"
    moved = await _publish_signed(client, signer, "moving", newer)
    assert moved != first.digest
    target = plugin_dir / first.file_name
    target.write_bytes(b"garbage")
    fresh = PluginInstaller(client, plugin_dir)
    assert [e.digest for e in await fresh.install_locked()] == [first.digest]
    assert target.read_bytes() == plugin_library
    # A fresh install follows the tag and re-locks.
    second = await fresh.install("source/moving:0.1.0")
    assert second.digest == moved and target.read_bytes() == newer


async def test_install_locked_refuses_a_binary_other_than_locked(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    await _publish_signed(client, signer, "pinned", plugin_library)
    entry = await PluginInstaller(client, plugin_dir).install("source/pinned:0.1.0")
    path = plugin_dir / "plugins.lock"
    document = json.loads(path.read_text())
    document["plugins"][0]["file_sha256"] = "0" * 64
    path.write_text(json.dumps(document))
    (plugin_dir / entry.file_name).unlink()
    with pytest.raises(IntegrityError, match="lockfile expects"):
        await PluginInstaller(client, plugin_dir).install_locked()
    assert sorted(os.listdir(plugin_dir)) == ["plugins.lock"]


async def test_unsigned_install_is_refused_and_writes_nothing(
    client: OciRegistryClient, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    await push_plugin(client, f"source/unsigned:{TAG}", plugin_library, metadata(kind="unsigned"))
    with pytest.raises(SignatureVerificationError, match="unsigned"):
        await PluginInstaller(client, plugin_dir).install("source/unsigned:0.1.0")
    assert not plugin_dir.exists() or os.listdir(plugin_dir) == []


async def test_remove(
    client: OciRegistryClient, signer: TestSigner, plugin_library: bytes, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugins"
    installer = await _install_all(client, signer, plugin_dir, plugin_library)
    removed = installer.remove("source/alpha")
    assert removed.file_name == "libdrasi_source_alpha.so"
    assert not (plugin_dir / removed.file_name).exists()
    assert [e.file_name for e in PluginLockfile.load(plugin_dir / "plugins.lock").entries()] == [
        "libdrasi_source_beta.so"
    ]
    with pytest.raises(RegistryNotFoundError, match="not installed"):
        installer.remove("source/alpha")


# -- typed errors ---------------------------------------------------------------------------------


async def test_not_found(client: OciRegistryClient, tmp_path: Path) -> None:
    installer = PluginInstaller(client, tmp_path / "plugins")
    with pytest.raises(RegistryNotFoundError) as info:
        await installer.install(f"source/nothere:{TAG}")
    assert info.value.status_code == 404 and info.value.reference
    with pytest.raises(RegistryNotFoundError):
        await installer.install("source/nothere:0.1.0")  # resolved: no tag for any suffix
    with pytest.raises(RegistryNotFoundError) as info:
        await client.list_tags("source/nothere")
    assert info.value.status_code == 404 and info.value.url
    assert not (tmp_path / "plugins").exists()


async def test_bad_credentials(auth_registry: RegistryServer, tmp_path: Path) -> None:
    config = auth_registry.config(auth=RegistryAuth.basic("drasi", "wrong password"))
    async with OciRegistryClient(config) as client:
        with pytest.raises(RegistryAuthError) as info:
            await PluginInstaller(client, tmp_path).install(f"source/any:{TAG}")
    assert info.value.status_code == 401
    anonymous = auth_registry.config(auth=RegistryAuth.anonymous())
    async with OciRegistryClient(anonymous) as client:
        with pytest.raises(RegistryAuthError, match="authentication required"):
            await client.get_manifest(f"source/any:{TAG}")
    assert os.listdir(tmp_path) == []


async def test_server_gone(fresh_registry: RegistryServer, tmp_path: Path) -> None:
    config = fresh_registry.config(max_retries=1)
    fresh_registry.stop()
    async with OciRegistryClient(config) as client:
        with pytest.raises(RegistryTransportError, match="after 2 attempts") as info:
            await PluginInstaller(client, tmp_path / "plugins").install(f"source/any:{TAG}")
    assert info.value.url is not None and info.value.status_code is None
    assert not (tmp_path / "plugins").exists()


async def test_tampered_blob(
    registry: RegistryServer,
    client: OciRegistryClient,
    signer: TestSigner,
    plugin_library: bytes,
    tmp_path: Path,
) -> None:
    binary = plugin_library + os.urandom(64)
    await _publish_signed(client, signer, "swapped", binary)
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
    blob.write_bytes(binary[:-1] + bytes([binary[-1] ^ 1]))
    plugin_dir = tmp_path / "plugins"
    with pytest.raises(IntegrityError, match="does not match its digest") as info:
        await PluginInstaller(client, plugin_dir).install("source/swapped:0.1.0")
    assert info.value.reference and "swapped" in info.value.reference
    assert os.listdir(plugin_dir) == []  # no file, no temporary file, no lockfile


# -- the commands ---------------------------------------------------------------------------------


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="drasi-host")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def _common(config: RegistryConfig, signer: TestSigner) -> list[str]:
    host = config.default_registry.split("/", 1)[0]
    return [
        "--registry",
        config.default_registry,
        "--insecure",
        host,
        "--trusted-identity",
        f"{ISSUER}=https://github.com/drasi-project/*",
        "--trusted-root",
        str(signer.trusted_root_path),
    ]


def test_commands(
    registry: RegistryServer,
    signer: TestSigner,
    plugin_library: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = registry.config()

    async def publish() -> None:
        async with OciRegistryClient(config) as client:
            for kind in KINDS:
                await _publish_signed(client, signer, kind, plugin_library)

    anyio.run(publish)
    plugin_dir = tmp_path / "plugins"
    common = _common(config, signer)
    run: Callable[..., int] = _run
    assert (
        run("install", "source/alpha:0.1.0", "source/beta:0.1.0", "--dir", str(plugin_dir), *common)
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("installed ") == 2 and "signature verified" in out

    assert run("lock", "check", "--dir", str(plugin_dir)) == 0
    out = capsys.readouterr().out
    assert out.count("ok\t") == 2

    assert run("list", "--dir", str(plugin_dir)) == 0
    out = capsys.readouterr().out
    assert "libdrasi_source_alpha.so" in out and f"signature verified by {SUBJECT}" in out

    # One changed, one unlisted, one missing: each named with its reason, exit 1.
    with open(plugin_dir / "libdrasi_source_alpha.so", "ab") as fh:
        fh.write(b"x")
    shutil.copyfile(plugin_dir / "libdrasi_source_beta.so", plugin_dir / "libdrasi_source_gamma.so")
    (plugin_dir / "libdrasi_source_beta.so").unlink()
    assert run("lock", "check", "--dir", str(plugin_dir)) == 1
    captured = capsys.readouterr()
    lines = sorted(captured.out.splitlines())
    assert lines[0].startswith("missing\tlibdrasi_source_beta.so\t")
    assert lines[1].startswith("no_entry\tlibdrasi_source_gamma.so\tnot listed")
    assert lines[2].startswith("tampered\tlibdrasi_source_alpha.so\tsha256 ")
    assert "3 of 3 file(s) fail" in captured.err

    (plugin_dir / "libdrasi_source_gamma.so").unlink()
    (plugin_dir / "libdrasi_source_alpha.so").unlink()
    assert run("install", "--locked", "--dir", str(plugin_dir), *common) == 0
    assert "2 of 2 locked plugin(s) (re)installed" in capsys.readouterr().out
    assert run("lock", "check", "--dir", str(plugin_dir)) == 0
    capsys.readouterr()

    assert run("install", "--locked", "source/alpha:0.1.0", "--dir", str(plugin_dir), *common) == 1
    assert "not both" in capsys.readouterr().err

    assert run("remove", "source/alpha", "--dir", str(plugin_dir), *common[:4]) == 0
    assert "removed libdrasi_source_alpha.so" in capsys.readouterr().out
    assert run("remove", "source/alpha", "--dir", str(plugin_dir), *common[:4]) == 1
    assert "not installed" in capsys.readouterr().err
