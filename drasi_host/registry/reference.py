"""Plugin references: ``[registry/]repository[:tag][@digest]``.

Parsing never fails; it splits the text the way the publisher's tooling does:

* the digest is the text after the last ``@`` when it looks like
  ``<algorithm>:<hex>`` (any other text after ``@`` is taken as the tag);
* the tag is the text after the last ``:`` that follows the last ``/``;
* the first ``/``-separated part is the registry host when it contains a
  ``.`` or a ``:`` (a port) or is ``localhost``; otherwise the name is short and
  lives under ``default_registry`` (``host/namespace``), so
  ``source/postgres:0.1.8`` becomes ``ghcr.io/drasi-project/source/postgres``
  tagged ``0.1.8``.
"""

from __future__ import annotations

import re

import attrs

DEFAULT_REGISTRY = "ghcr.io/drasi-project"

_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+")


def _is_registry_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


def split_default_registry(default_registry: str) -> tuple[str, str]:
    """Split ``host/namespace`` at its first ``/`` (the namespace may be empty)."""
    host, _, namespace = default_registry.strip("/").partition("/")
    return host, namespace


@attrs.frozen
class PluginReference:
    """A parsed plugin reference."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str, default_registry: str = DEFAULT_REGISTRY) -> PluginReference:
        """Parse ``ref``; short names are placed under ``default_registry``."""
        rest = ref.strip()
        tag: str | None = None
        digest: str | None = None
        if "@" in rest:
            rest, _, after = rest.rpartition("@")
            if _DIGEST_RE.fullmatch(after):
                digest = after
            else:
                tag = after or None
        if tag is None:
            colon = rest.rfind(":")
            if colon > rest.rfind("/"):
                tag = rest[colon + 1 :] or None
                rest = rest[:colon]
        first, sep, remainder = rest.partition("/")
        if sep and _is_registry_host(first):
            return cls(registry=first, repository=remainder, tag=tag, digest=digest)
        host, namespace = split_default_registry(default_registry)
        repository = f"{namespace}/{rest}" if namespace else rest
        return cls(registry=host, repository=repository, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What names the manifest in ``/v2/<repo>/manifests/<reference>``."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> PluginReference:
        """The same repository with ``tag`` and no digest."""
        return attrs.evolve(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> PluginReference:
        """The same repository pinned to ``digest`` (the tag is kept for display)."""
        return attrs.evolve(self, digest=digest)

    def to_oci_reference(self) -> str:
        """``registry/repository[:tag][@digest]``."""
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.to_oci_reference()


def as_reference(ref: str | PluginReference, default_registry: str) -> PluginReference:
    """``ref`` itself, or parsed against ``default_registry``."""
    if isinstance(ref, PluginReference):
        return ref
    return PluginReference.parse(ref, default_registry)


__all__ = ["DEFAULT_REGISTRY", "PluginReference", "as_reference", "split_default_registry"]
