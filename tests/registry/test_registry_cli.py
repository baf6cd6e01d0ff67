"""The pull / verify / search commands, run through argparse against a real registry."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import anyio
import pytest
from registry_helpers import metadata, push_directory, push_plugin, push_simplesigning
from registry_servers import RegistryServer
from signing import TestSigner

from drasi_host.registry.cli import add_commands
from drasi_host.registry.oci import OciRegistryClient, RegistryConfig

pytestmark = pytest.mark.registry
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/drasi-project/drasi-core/.github/workflows/publish.yml@refs/tags/v1"
TAG = "0.1.0-linux-amd64"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="drasi-host")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def _common(config: RegistryConfig) -> list[str]:
    host = config.default_registry.split("/", 1)[0]
    return ["--registry", config.default_registry, "--insecure", host]


@pytest.fixture(scope="module")
def published(
    registry: RegistryServer, plugin_binary: bytes, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RegistryConfig, TestSigner]:
    config = registry.config()
    signer = TestSigner(tmp_path_factory.mktemp("cli-sigstore"))

    async def publish() -> None:
        async with OciRegistryClient(config) as client:
            digest = await push_plugin(
                client, f"source/signed:{TAG}", plugin_binary, metadata(kind="signed")
            )
            repo = f"{config.default_registry}/source/signed"
            payload, annotations = signer.sign_simplesigning(repo, digest, ISSUER, SUBJECT)
            await push_simplesigning(client, repo, digest, [(payload, annotations)])
            await push_plugin(
                client, f"source/unsigned:{TAG}", plugin_binary, metadata(kind="unsigned")
            )
            await push_directory(client, ["source.signed", "source.unsigned"])

    anyio.run(publish)
    return config, signer


def test_pull_verified(
    published: tuple[RegistryConfig, TestSigner],
    tmp_path: Path,
    plugin_binary: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, signer = published
    code = _run(
        "pull",
        f"source/signed:{TAG}",
        "--dest",
        str(tmp_path),
        *_common(config),
        "--trusted-identity",
        f"{ISSUER}=https://github.com/drasi-project/*",
        "--trusted-root",
        str(signer.trusted_root_path),
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "libdrasi_source_signed.so").read_bytes() == plugin_binary
    assert out.startswith("pulled ")
    assert f"signature verified ({SUBJECT} via {ISSUER})" in out
    assert "%" not in err  # no progress bar when stderr is not a terminal


def test_pull_refuses_unsigned(
    published: tuple[RegistryConfig, TestSigner], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, signer = published
    code = _run(
        "pull",
        f"source/unsigned:{TAG}",
        "--dest",
        str(tmp_path),
        *_common(config),
        "--trusted-root",
        str(signer.trusted_root_path),
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "unsigned" in err
    assert "--no-verify" in err
    assert os.listdir(tmp_path) == []
    code = _run(
        "pull", f"source/unsigned:{TAG}", "--dest", str(tmp_path), *_common(config), "--no-verify"
    )
    assert code == 0
    assert os.listdir(tmp_path) == ["libdrasi_source_unsigned.so"]


def test_verify(
    published: tuple[RegistryConfig, TestSigner], capsys: pytest.CaptureFixture[str]
) -> None:
    config, signer = published
    root = ["--trusted-root", str(signer.trusted_root_path)]
    assert _run("verify", f"source/signed:{TAG}", *_common(config), *root) == 0
    assert "verified" in capsys.readouterr().out
    assert _run("verify", f"source/unsigned:{TAG}", *_common(config), *root) == 2
    assert "unsigned" in capsys.readouterr().out
    other = ["--trusted-identity", f"{ISSUER}=https://github.com/elsewhere/*"]
    assert _run("verify", f"source/signed:{TAG}", *_common(config), *root, *other) == 2
    assert "invalid" in capsys.readouterr().out
    assert (
        _run(
            "verify",
            f"source/signed:{TAG}",
            *_common(config),
            "--trusted-identity",
            "no-equals-sign",
        )
        == 1
    )
    assert "ISSUER=PATTERN" in capsys.readouterr().err


def test_search(
    published: tuple[RegistryConfig, TestSigner], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = published
    assert _run("search", "signed", "--json", *_common(config)) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["reference"] for d in data} == {"source/signed", "source/unsigned"}
    for entry in data:
        assert entry["versions"] == [{"version": "0.1.0", "suffixes": ["linux-amd64"]}]
        assert entry["error"] is None
    assert _run("search", "source/unsigned", *_common(config)) == 0
    assert capsys.readouterr().out == "source/unsigned\t0.1.0 [linux-amd64]\n"


def test_credentials_from_environment(
    auth_registry: RegistryServer,
    plugin_binary: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = auth_registry.config()

    async def publish() -> None:
        async with OciRegistryClient(config) as client:
            await push_plugin(
                client, f"source/private:{TAG}", plugin_binary, metadata(kind="private")
            )

    anyio.run(publish)
    assert config.auth.username is not None and config.auth.password is not None
    monkeypatch.setenv("DRASI_REGISTRY_USERNAME", config.auth.username)
    monkeypatch.setenv("DRASI_REGISTRY_PASSWORD", config.auth.password)
    args = [
        "pull",
        f"source/private:{TAG}",
        "--dest",
        str(tmp_path),
        "--no-verify",
        *_common(config),
    ]
    assert _run(*args) == 0
    assert (tmp_path / "libdrasi_source_private.so").read_bytes() == plugin_binary
    monkeypatch.setenv("DRASI_REGISTRY_PASSWORD", "wrong")
    assert _run(*args) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert _run(*args, "--password", config.auth.password) == 0


def test_progress_bar() -> None:
    import io

    from drasi_host.registry.cli import _ProgressBar

    stream = io.StringIO()
    bar = _ProgressBar(stream)
    for done in (0, 1048576, 1048576, 2097152):
        bar(done, 2097152)
    bar.finish()
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3  # a repeated percentage is not redrawn
    assert frames[0].startswith("[" + " " * 30 + "]   0%")
    assert frames[1].startswith("[" + "#" * 15 + " " * 15 + "]  50% 1.0/2.0 MiB")
    assert frames[2] == "[" + "#" * 30 + "] 100% 2.0/2.0 MiB\n"


def test_pull_resolves_a_version_for_this_host(
    published: tuple[RegistryConfig, TestSigner],
    tmp_path: Path,
    plugin_binary: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from drasi_host.errors import RegistryError
    from drasi_host.registry.platform import tag_suffix
    from drasi_host.registry.resolver import HostVersionInfo

    try:
        host = HostVersionInfo.current()
    except RegistryError as exc:
        pytest.skip(str(exc))
    if tag_suffix(host.target_triple) != "linux-amd64":
        pytest.skip(f"the published test artifacts are linux-amd64, this host is {host}")
    config, _ = published
    code = _run(
        "pull", "source/unsigned:0.1.0", "--dest", str(tmp_path), "--no-verify", *_common(config)
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "libdrasi_source_unsigned.so").read_bytes() == plugin_binary
    assert "signature unsigned (verification disabled)" in out
