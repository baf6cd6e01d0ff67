"""PluginReference.parse: REGISTRY.md section 1, with host:port and localhost as registries."""

from __future__ import annotations

import pytest

from drasi_host.registry.reference import PluginReference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("source/postgres:0.1.8", "ghcr.io", "drasi-project/source/postgres", "0.1.8", None),
        ("source/postgres", "ghcr.io", "drasi-project/source/postgres", None, None),
        (
            "reaction/storedproc-mssql:0.2.0-linux-amd64",
            "ghcr.io",
            "drasi-project/reaction/storedproc-mssql",
            "0.2.0-linux-amd64",
            None,
        ),
        ("postgres:1.0", "ghcr.io", "drasi-project/postgres", "1.0", None),
        ("ghcr.io/other/source/x:1.2.3", "ghcr.io", "other/source/x", "1.2.3", None),
        ("example.com/a/b", "example.com", "a/b", None, None),
        ("127.0.0.1:5000/x:1", "127.0.0.1:5000", "x", "1", None),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("localhost/ns/x:2", "localhost", "ns/x", "2", None),
        ("myhost:5000/ns/source/pg:0.1.8", "myhost:5000", "ns/source/pg", "0.1.8", None),
        (f"source/postgres@{DIGEST}", "ghcr.io", "drasi-project/source/postgres", None, DIGEST),
        (f"quay.io/a/b:1.0@{DIGEST}", "quay.io", "a/b", "1.0", DIGEST),
        ("source/pg@latest", "ghcr.io", "drasi-project/source/pg", "latest", None),
        ("noslash", "ghcr.io", "drasi-project/noslash", None, None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = PluginReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_custom_default_registry() -> None:
    ref = PluginReference.parse("source/pg:1", "127.0.0.1:5000/plugins")
    assert ref.registry == "127.0.0.1:5000"
    assert ref.repository == "plugins/source/pg"
    ref = PluginReference.parse("source/pg:1", "registry.local")
    assert (ref.registry, ref.repository) == ("registry.local", "source/pg")


def test_to_oci_reference() -> None:
    assert PluginReference.parse("source/postgres:0.1.8").to_oci_reference() == (
        "ghcr.io/drasi-project/source/postgres:0.1.8"
    )
    assert PluginReference.parse("source/postgres").to_oci_reference() == (
        "ghcr.io/drasi-project/source/postgres"
    )
    digest_ref = PluginReference.parse(f"source/postgres@{DIGEST}")
    assert digest_ref.to_oci_reference() == f"ghcr.io/drasi-project/source/postgres@{DIGEST}"
    assert digest_ref.reference == DIGEST
    assert PluginReference.parse(digest_ref.to_oci_reference()) == digest_ref


def test_round_trip_and_helpers() -> None:
    ref = PluginReference.parse("localhost:5000/ns/x:1.0")
    assert PluginReference.parse(ref.to_oci_reference()) == ref
    assert ref.with_tag("2.0").to_oci_reference() == "localhost:5000/ns/x:2.0"
    pinned = ref.with_digest(DIGEST)
    assert pinned.reference == DIGEST
    assert PluginReference.parse("a/b").reference == "latest"
