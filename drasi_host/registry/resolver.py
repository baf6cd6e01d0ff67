"""Choosing the plugin artifact that fits this host.

A reference names a plugin and optionally a version (``source/postgres:0.1.8``);
artifacts are tagged per platform (``0.1.8-linux-amd64``).  The resolver tries
the host's own tag suffix, then its fallbacks (``windows-msvc-amd64`` falls back
to ``windows-amd64``):

* with a version, ``<version>-<suffix>`` per suffix: a missing tag moves on, an
  incompatible artifact is an error listing the mismatched fields;
* without one, the repository's tags are listed once and, per suffix, the strict
  semver release tags are tried newest first; incompatible or unreadable ones
  are skipped (and logged);
* a digest reference (``repo@sha256:...``) is checked as it is.

Compatible means the artifact's ``io.drasi.plugin.{sdk,core,lib}-version``
annotations all share the host's major.minor (equal strings when either side
is not semver).  When nothing fits, the error lists the tags seen and why each
candidate was rejected.  The resolved reference is pinned to the digest of the
very manifest that was checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

import drasi_host
from drasi_host.errors import RegistryError, RegistryNotFoundError
from drasi_host.registry._semver import parse_semver, same_major_minor, version_sort_key
from drasi_host.registry.artifact import (
    ANN_CORE_VERSION,
    ANN_KIND,
    ANN_LIB_VERSION,
    ANN_SDK_VERSION,
    ANN_TYPE,
    ANN_VERSION,
    SAFE_NAME_RE,
    Manifest,
)
from drasi_host.registry.distribution import DistributionClient
from drasi_host.registry.platform import (
    library_filename,
    strip_arch_suffix,
    tag_suffixes,
    triple_to_platform,
)
from drasi_host.registry.reference import PluginReference

log = logging.getLogger("drasi_host.registry")

_MAX_LISTED_TAGS = 40


@attrs.frozen
class HostVersionInfo:
    """The versions and target a host offers plugins."""

    sdk_version: str
    core_version: str
    lib_version: str
    target_triple: str

    @classmethod
    def current(
        cls, *, core_version: str | None = None, lib_version: str | None = None
    ) -> HostVersionInfo:
        """This host: ``drasi_host.HOST_SDK_VERSION`` and ``host_target_triple()``.

        The core and lib versions default to ``drasi_host.HOST_CORE_VERSION`` /
        ``HOST_LIB_VERSION`` when the package defines them, else to the SDK version.
        """
        sdk_version = getattr(drasi_host, "HOST_SDK_VERSION", None)
        triple_fn = getattr(drasi_host, "host_target_triple", None)
        if not isinstance(sdk_version, str) or not callable(triple_fn):
            raise RegistryError(
                "cannot determine this host's versions: drasi_host.HOST_SDK_VERSION and "
                "drasi_host.host_target_triple() are not available; build HostVersionInfo "
                "explicitly"
            )
        triple = str(triple_fn())
        core = core_version or getattr(drasi_host, "HOST_CORE_VERSION", None) or sdk_version
        lib = lib_version or getattr(drasi_host, "HOST_LIB_VERSION", None) or sdk_version
        return cls(
            sdk_version=sdk_version,
            core_version=str(core),
            lib_version=str(lib),
            target_triple=triple,
        )


@attrs.frozen
class ResolvedPlugin:
    """The artifact chosen for this host.  ``reference`` is pinned to ``digest``."""

    reference: str
    version: str
    sdk_version: str
    core_version: str
    lib_version: str
    platform: str
    digest: str
    filename: str
    tag: str | None = None


def compatibility_problems(annotations: Mapping[str, str], host: HostVersionInfo) -> list[str]:
    """Why an artifact with these manifest annotations does not fit ``host``
    (empty when it fits)."""
    problems: list[str] = []
    for key, wanted in (
        (ANN_SDK_VERSION, host.sdk_version),
        (ANN_CORE_VERSION, host.core_version),
        (ANN_LIB_VERSION, host.lib_version),
    ):
        value = annotations.get(key)
        if value is None:
            problems.append(f"{key} missing")
        elif not same_major_minor(wanted, value):
            problems.append(f"{key} {value} (host has {wanted})")
    for key in (ANN_TYPE, ANN_KIND):
        value = annotations.get(key)
        if value is not None and not SAFE_NAME_RE.fullmatch(value):
            problems.append(f"{key} {value!r} is not a valid plugin name")
    return problems


class PluginResolver:
    """Resolves plugin references to artifacts compatible with ``host``."""

    def __init__(self, client: DistributionClient, host: HostVersionInfo) -> None:
        self.client = client
        self.host = host

    def _resolved(
        self, parsed: PluginReference, manifest: Manifest, tag: str | None
    ) -> ResolvedPlugin:
        annotations = manifest.annotations
        platform = triple_to_platform(self.host.target_triple)
        if tag is not None:
            split = strip_arch_suffix(tag)
            version = split[0] if split else tag
        else:
            version = annotations.get(ANN_VERSION, "")
        filename = library_filename(
            annotations.get(ANN_TYPE, ""), annotations.get(ANN_KIND, ""), self.host.target_triple
        )
        return ResolvedPlugin(
            reference=f"{parsed.registry}/{parsed.repository}@{manifest.digest}",
            version=version,
            sdk_version=annotations.get(ANN_SDK_VERSION, ""),
            core_version=annotations.get(ANN_CORE_VERSION, ""),
            lib_version=annotations.get(ANN_LIB_VERSION, ""),
            platform=str(platform) if platform else "",
            digest=manifest.digest,
            filename=filename,
            tag=tag,
        )

    async def _check(self, parsed: PluginReference) -> tuple[Manifest | None, list[str]]:
        manifest = await self.client.find_manifest(parsed)
        if manifest is None:
            return None, []
        if manifest.is_index:
            return manifest, ["is an image index, not a plugin manifest"]
        return manifest, compatibility_problems(manifest.annotations, self.host)

    async def resolve(self, ref: str | PluginReference) -> ResolvedPlugin:
        """The compatible artifact ``ref`` resolves to; ``RegistryError`` if none."""
        parsed = self.client.parse(ref)
        suffixes = tag_suffixes(self.host.target_triple)
        if not suffixes:
            raise RegistryError(
                f"{parsed}: this host's target triple "
                f"{self.host.target_triple!r} has no published platform"
            )
        if parsed.digest:
            manifest, problems = await self._check(parsed)
            if manifest is None:
                raise RegistryNotFoundError(f"{parsed}: not found", reference=str(parsed))
            if problems:
                raise RegistryError(
                    f"{parsed} is incompatible with this host: " + "; ".join(problems)
                )
            return self._resolved(parsed, manifest, parsed.tag)
        if parsed.tag:
            return await self._resolve_tag(parsed, parsed.tag, suffixes)
        return await self._resolve_latest(parsed, suffixes)

    async def _resolve_tag(
        self, parsed: PluginReference, version: str, suffixes: list[str]
    ) -> ResolvedPlugin:
        tried: list[str] = []
        for suffix in suffixes:
            tag = f"{version}-{suffix}"
            manifest, problems = await self._check(parsed.with_tag(tag))
            if manifest is None:
                tried.append(tag)
                continue
            if problems:
                raise RegistryError(
                    f"{parsed.with_tag(tag)} is incompatible with this host "
                    f"({self.host.target_triple}): " + "; ".join(problems)
                )
            return self._resolved(parsed, manifest, tag)
        raise RegistryNotFoundError(
            f"{parsed}: no artifact for this platform "
            f"({self.host.target_triple}); tags tried: {', '.join(tried)}",
            reference=str(parsed),
        )

    async def _resolve_latest(self, parsed: PluginReference, suffixes: list[str]) -> ResolvedPlugin:
        tags = await self.client.list_tags(parsed)
        rejected: list[str] = []
        for suffix in suffixes:
            candidates: list[tuple[str, str]] = []
            for tag in tags:
                if not tag.endswith("-" + suffix):
                    continue
                version = tag[: -len(suffix) - 1]
                semver = parse_semver(version)
                if semver is None or semver[3] is not None:
                    rejected.append(f"{tag}: not a release version")
                    continue
                candidates.append((version, tag))
            candidates.sort(key=lambda c: version_sort_key(c[0]), reverse=True)
            for _version, tag in candidates:
                try:
                    manifest, problems = await self._check(parsed.with_tag(tag))
                except RegistryError as exc:
                    log.warning("skipping %s: %s", parsed.with_tag(tag), exc)
                    rejected.append(f"{tag}: unreadable ({exc})")
                    continue
                if manifest is None:
                    rejected.append(f"{tag}: manifest not found")
                    continue
                if problems:
                    log.info("skipping %s: %s", parsed.with_tag(tag), "; ".join(problems))
                    rejected.append(f"{tag}: incompatible ({'; '.join(problems)})")
                    continue
                return self._resolved(parsed, manifest, tag)
        seen = ", ".join(tags[:_MAX_LISTED_TAGS]) or "none"
        if len(tags) > _MAX_LISTED_TAGS:
            seen += f", ... ({len(tags)} in all)"
        why = "; ".join(rejected) if rejected else "no tag has a suffix of this platform"
        raise RegistryError(
            f"{parsed}: no compatible version found for {self.host.target_triple} "
            f"(suffixes {', '.join(suffixes)}; host sdk {self.host.sdk_version}, core "
            f"{self.host.core_version}, lib {self.host.lib_version}). Tags seen: {seen}. "
            f"Rejected: {why}"
        )


__all__ = ["HostVersionInfo", "PluginResolver", "ResolvedPlugin", "compatibility_problems"]
