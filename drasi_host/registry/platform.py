"""Target triples, OCI platforms and the architecture suffix of plugin tags.

Plugins are published as one artifact per target, tagged
``<version>[-<prerelease>]-<suffix>`` (``0.1.8-linux-amd64``).  This module maps
a Rust target triple to its OCI platform (``os/arch[/variant]``) and to the tag
suffixes a host should look for (its own first, then fallbacks), maps a platform
back to the preferred triple, and splits a tag into version and suffix.
"""

from __future__ import annotations

import platform as _stdlib_platform
import sys

import attrs

_ARCHES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "aarch64": ("arm64", None),
    "armv7": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "i686": ("386", None),
    "i386": ("386", None),
    "riscv64": ("riscv64", None),
    "riscv64gc": ("riscv64", None),
    "s390x": ("s390x", None),
    "powerpc64le": ("ppc64le", None),
    "ppc64le": ("ppc64le", None),
}

_OSES = {
    "linux": "linux",
    "windows": "windows",
    "darwin": "darwin",
    "apple": "darwin",
    "freebsd": "freebsd",
}

_PLATFORM_TRIPLES: dict[tuple[str, str], str] = {
    ("linux", "amd64"): "x86_64-unknown-linux-gnu",
    ("linux", "arm64"): "aarch64-unknown-linux-gnu",
    ("linux", "386"): "i686-unknown-linux-gnu",
    ("linux", "riscv64"): "riscv64gc-unknown-linux-gnu",
    ("linux", "s390x"): "s390x-unknown-linux-gnu",
    ("linux", "ppc64le"): "powerpc64le-unknown-linux-gnu",
    ("linux", "arm"): "armv7-unknown-linux-gnueabihf",
    ("windows", "amd64"): "x86_64-pc-windows-gnu",
    ("windows", "arm64"): "aarch64-pc-windows-gnullvm",
    ("darwin", "amd64"): "x86_64-apple-darwin",
    ("darwin", "arm64"): "aarch64-apple-darwin",
    ("freebsd", "amd64"): "x86_64-unknown-freebsd",
}

#: The suffixes :func:`strip_arch_suffix` recognises, longest first.
KNOWN_SUFFIXES: tuple[str, ...] = (
    "linux-musl-amd64",
    "linux-musl-arm64",
    "windows-msvc-amd64",
    "linux-amd64",
    "linux-arm64",
    "linux-arm",
    "linux-386",
    "linux-riscv64",
    "linux-s390x",
    "linux-ppc64le",
    "windows-amd64",
    "windows-arm64",
    "darwin-amd64",
    "darwin-arm64",
    "freebsd-amd64",
)


@attrs.frozen
class Platform:
    """An OCI platform: ``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``; raises ``ValueError`` on other shapes."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"not an OCI platform (os/arch[/variant]): {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def triple_to_platform(triple: str) -> Platform | None:
    """The OCI platform of a Rust target triple, or None if unsupported."""
    parts = triple.split("-")
    if len(parts) < 3:
        return None
    arch = _ARCHES.get(parts[0])
    if arch is None:
        return None
    os_name = _OSES.get(parts[2])
    if os_name is None:
        for word in ("linux", "windows", "darwin", "apple"):
            if word in triple:
                os_name = _OSES[word]
                break
    if os_name is None:
        return None
    return Platform(os_name, arch[0], arch[1])


def platform_to_triple(platform: Platform | str) -> str | None:
    """The preferred (GNU) triple of a platform, or None if there is none."""
    if isinstance(platform, str):
        try:
            platform = Platform.parse(platform)
        except ValueError:
            return None
    return _PLATFORM_TRIPLES.get((platform.os, platform.architecture))


def tag_suffix(triple: str) -> str | None:
    """The tag suffix of artifacts built for ``triple`` (None if unsupported)."""
    platform = triple_to_platform(triple)
    if platform is None:
        return None
    if "musl" in triple:
        return f"{platform.os}-musl-{platform.architecture}"
    if "msvc" in triple:
        return f"{platform.os}-msvc-{platform.architecture}"
    return f"{platform.os}-{platform.architecture}"


def tag_suffixes(triple: str) -> list[str]:
    """The suffixes a host with ``triple`` tries, in order: its own, then fallbacks.

    Empty when the triple is unsupported.
    """
    own = tag_suffix(triple)
    if own is None:
        return []
    suffixes = [own]
    if "msvc" in triple:
        platform = triple_to_platform(triple)
        assert platform is not None
        suffixes.append(f"{platform.os}-{platform.architecture}")
    return suffixes


def strip_arch_suffix(tag: str) -> tuple[str, str] | None:
    """Split ``tag`` into ``(version, suffix)``, or None without a known suffix."""
    for suffix in KNOWN_SUFFIXES:
        if tag.endswith("-" + suffix):
            version = tag[: -len(suffix) - 1]
            if version:
                return version, suffix
    return None


_MACHINES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "armv7": "armv7",
    "i686": "i686",
    "i386": "i686",
    "x86": "i686",
    "riscv64": "riscv64gc",
    "s390x": "s390x",
    "ppc64le": "powerpc64le",
}


def current_target_triple() -> str | None:
    """A best guess at this process's target triple from the interpreter's view.

    Used only when nothing better is known (an image index in the registry);
    the loader's own ``host_target_triple()`` is authoritative.
    """
    arch = _MACHINES.get(_stdlib_platform.machine().lower())
    if arch is None:
        return None
    if sys.platform.startswith("linux"):
        libc = _stdlib_platform.libc_ver()[0]
        if arch == "armv7":
            return "armv7-unknown-linux-gnueabihf"
        env = "gnu" if libc == "glibc" or not libc else "musl"
        return f"{arch}-unknown-linux-{env}"
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    if sys.platform.startswith("freebsd"):
        return f"{arch}-unknown-freebsd"
    return None


def library_filename(plugin_type: str, kind: str, triple: str | None = None) -> str:
    """The file name of a plugin library: ``libdrasi_<type>_<kind>.so`` and so on.

    ``-`` in the kind becomes ``_``; ``.dylib`` on Apple targets, ``.dll`` without
    the ``lib`` prefix on Windows.  ``triple`` defaults to this process's platform.
    """
    stem = f"drasi_{plugin_type}_{kind.replace('-', '_')}"
    if triple is None:
        is_windows, is_apple = sys.platform == "win32", sys.platform == "darwin"
    else:
        is_windows, is_apple = "windows" in triple, "apple" in triple or "darwin" in triple
    if is_windows:
        return f"{stem}.dll"
    if is_apple:
        return f"lib{stem}.dylib"
    return f"lib{stem}.so"


__all__ = [
    "KNOWN_SUFFIXES",
    "Platform",
    "current_target_triple",
    "library_filename",
    "platform_to_triple",
    "strip_arch_suffix",
    "tag_suffix",
    "tag_suffixes",
    "triple_to_platform",
]
