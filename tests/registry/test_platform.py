"""Triples, platforms, tag suffixes and file names: every row of REGISTRY.md section 2."""

from __future__ import annotations

import pytest

from drasi_host.registry.platform import (
    KNOWN_SUFFIXES,
    Platform,
    library_filename,
    platform_to_triple,
    strip_arch_suffix,
    tag_suffix,
    tag_suffixes,
    triple_to_platform,
)


@pytest.mark.parametrize(
    ("triple", "platform", "suffixes"),
    [
        ("x86_64-unknown-linux-gnu", "linux/amd64", ["linux-amd64"]),
        ("aarch64-unknown-linux-gnu", "linux/arm64", ["linux-arm64"]),
        ("x86_64-unknown-linux-musl", "linux/amd64", ["linux-musl-amd64"]),
        ("aarch64-unknown-linux-musl", "linux/arm64", ["linux-musl-arm64"]),
        ("x86_64-pc-windows-gnu", "windows/amd64", ["windows-amd64"]),
        ("x86_64-pc-windows-msvc", "windows/amd64", ["windows-msvc-amd64", "windows-amd64"]),
        ("x86_64-apple-darwin", "darwin/amd64", ["darwin-amd64"]),
        ("aarch64-apple-darwin", "darwin/arm64", ["darwin-arm64"]),
    ],
)
def test_publisher_matrix(triple: str, platform: str, suffixes: list[str]) -> None:
    assert str(triple_to_platform(triple)) == platform
    assert tag_suffixes(triple) == suffixes
    assert tag_suffix(triple) == suffixes[0]


@pytest.mark.parametrize(
    ("triple", "expected"),
    [
        ("armv7-unknown-linux-gnueabihf", Platform("linux", "arm", "v7")),
        ("armv7l-unknown-linux-gnueabihf", Platform("linux", "arm", "v7")),
        ("i686-unknown-linux-gnu", Platform("linux", "386")),
        ("i386-unknown-linux-gnu", Platform("linux", "386")),
        ("riscv64gc-unknown-linux-gnu", Platform("linux", "riscv64")),
        ("riscv64-unknown-linux-gnu", Platform("linux", "riscv64")),
        ("s390x-unknown-linux-gnu", Platform("linux", "s390x")),
        ("powerpc64le-unknown-linux-gnu", Platform("linux", "ppc64le")),
        ("ppc64le-unknown-linux-gnu", Platform("linux", "ppc64le")),
        ("x86_64-unknown-freebsd", Platform("freebsd", "amd64")),
        ("aarch64-pc-windows-gnullvm", Platform("windows", "arm64")),
        ("x86_64-linux-gnu", Platform("linux", "amd64")),  # OS found by searching
        ("aarch64-apple-ios", Platform("darwin", "arm64")),
        ("mips-unknown-linux-gnu", None),  # unsupported arch
        ("x86_64-unknown-netbsd", None),  # unsupported OS
        ("x86_64-linux", None),  # fewer than 3 parts
        ("", None),
    ],
)
def test_triple_to_platform(triple: str, expected: Platform | None) -> None:
    assert triple_to_platform(triple) == expected


def test_platform_string_and_suffix_variants() -> None:
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"
    assert Platform.parse("linux/arm/v7") == Platform("linux", "arm", "v7")
    with pytest.raises(ValueError):
        Platform.parse("linux")
    # the variant is dropped in suffixes; these two can be produced but are not known
    assert tag_suffix("armv7-unknown-linux-gnueabihf") == "linux-arm"
    assert tag_suffix("armv7-unknown-linux-musleabihf") == "linux-musl-arm"
    assert tag_suffix("aarch64-pc-windows-msvc") == "windows-msvc-arm64"
    assert tag_suffixes("aarch64-pc-windows-msvc") == ["windows-msvc-arm64", "windows-arm64"]
    assert tag_suffixes("mips-unknown-linux-gnu") == []
    assert tag_suffix("mips-unknown-linux-gnu") is None


@pytest.mark.parametrize(
    ("platform", "triple"),
    [
        ("linux/amd64", "x86_64-unknown-linux-gnu"),
        ("linux/arm64", "aarch64-unknown-linux-gnu"),
        ("linux/386", "i686-unknown-linux-gnu"),
        ("linux/riscv64", "riscv64gc-unknown-linux-gnu"),
        ("linux/s390x", "s390x-unknown-linux-gnu"),
        ("linux/ppc64le", "powerpc64le-unknown-linux-gnu"),
        ("linux/arm", "armv7-unknown-linux-gnueabihf"),
        ("linux/arm/v7", "armv7-unknown-linux-gnueabihf"),
        ("windows/amd64", "x86_64-pc-windows-gnu"),
        ("windows/arm64", "aarch64-pc-windows-gnullvm"),
        ("darwin/amd64", "x86_64-apple-darwin"),
        ("darwin/arm64", "aarch64-apple-darwin"),
        ("freebsd/amd64", "x86_64-unknown-freebsd"),
        ("freebsd/arm64", None),
        ("plan9/amd64", None),
        ("nonsense", None),
    ],
)
def test_platform_to_triple(platform: str, triple: str | None) -> None:
    assert platform_to_triple(platform) == triple


@pytest.mark.parametrize("suffix", KNOWN_SUFFIXES)
def test_strip_every_known_suffix(suffix: str) -> None:
    assert strip_arch_suffix(f"1.2.3-{suffix}") == ("1.2.3", suffix)
    assert strip_arch_suffix(f"1.2.3-rc.1-{suffix}") == ("1.2.3-rc.1", suffix)


def test_strip_arch_suffix_cases() -> None:
    assert len(KNOWN_SUFFIXES) == 15
    assert strip_arch_suffix("0.1.8-dev.1-linux-musl-arm64") == ("0.1.8-dev.1", "linux-musl-arm64")
    assert strip_arch_suffix("0.1.8-windows-msvc-amd64") == ("0.1.8", "windows-msvc-amd64")
    assert strip_arch_suffix("0.1.8") is None
    assert strip_arch_suffix("latest") is None
    assert strip_arch_suffix("linux-amd64") is None  # the suffix must follow a '-'
    assert strip_arch_suffix("0.1.8linux-amd64") is None
    assert strip_arch_suffix("0.1.8-linux-musl-arm") is None
    assert strip_arch_suffix("0.1.8-windows-msvc-arm64") is None


def test_library_filename() -> None:
    assert library_filename("source", "postgres", "x86_64-unknown-linux-gnu") == (
        "libdrasi_source_postgres.so"
    )
    assert library_filename("reaction", "storedproc-mssql", "aarch64-apple-darwin") == (
        "libdrasi_reaction_storedproc_mssql.dylib"
    )
    assert library_filename("bootstrap", "pg", "x86_64-pc-windows-msvc") == (
        "drasi_bootstrap_pg.dll"
    )
