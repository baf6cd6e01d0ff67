"""Installing plugins into a directory and recording them in its lockfile.

:class:`PluginInstaller` resolves a reference for this host, downloads it
through the one verified download path (:func:`~drasi_host.registry.pull.pull_plugin`:
verify first, stream + hash, atomic rename, nothing left on failure) and
records the result in the :class:`~drasi_host.lockfile.PluginLockfile`
(written atomically).  :meth:`PluginInstaller.install_locked` reinstalls
exactly what the lockfile names: the manifest by its digest and the binary by
its SHA-256, both checked before anything is written.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from drasi_host.errors import IntegrityError, RegistryNotFoundError
from drasi_host.lockfile import (
    LOCKFILE_NAME,
    IntegrityStatus,
    LockedVerification,
    LockEntry,
    PluginLockfile,
)
from drasi_host.registry.distribution import ProgressCallback
from drasi_host.registry.oci import OciRegistryClient
from drasi_host.registry.platform import strip_arch_suffix
from drasi_host.registry.pull import DownloadResult, pull_plugin
from drasi_host.registry.reference import PluginReference
from drasi_host.registry.resolver import HostVersionInfo, PluginResolver


def _recorded(result: DownloadResult) -> LockedVerification:
    verification = result.verification
    if verification is None:
        return LockedVerification("unchecked")
    return LockedVerification(verification.status.value, verification.issuer, verification.subject)


class PluginInstaller:
    """Installs plugins from ``client``'s registries into ``plugin_dir``.

    ``lockfile`` defaults to ``plugin_dir/plugins.lock`` (loaded now; a
    missing file is an empty lockfile).  Signatures are verified by the
    client's verifier, when it has an enabled one.  ``host`` (default: this
    process) chooses among the published platforms.
    """

    def __init__(
        self,
        client: OciRegistryClient,
        plugin_dir: str | os.PathLike[str],
        lockfile: PluginLockfile | None = None,
        *,
        host: HostVersionInfo | None = None,
    ) -> None:
        self.client = client
        self.plugin_dir = Path(plugin_dir)
        self.lockfile = (
            lockfile
            if lockfile is not None
            else PluginLockfile.load(self.plugin_dir / LOCKFILE_NAME)
        )
        self._host = host

    def _same_repository(self, entry: LockEntry, parsed: PluginReference) -> bool:
        other = self.client.parse(entry.reference)
        return (other.registry, other.repository) == (parsed.registry, parsed.repository)

    async def install(
        self, ref: str | PluginReference, progress: ProgressCallback | None = None
    ) -> LockEntry:
        """Resolve ``ref`` for this host (unless it names a digest or a
        platform tag), download and verify it, and record it in the lockfile,
        replacing the entry of an earlier install of the same repository."""
        parsed = self.client.parse(ref)
        target: str | PluginReference = parsed
        if not parsed.digest and not (parsed.tag and strip_arch_suffix(parsed.tag)):
            host = self._host if self._host is not None else HostVersionInfo.current()
            resolved = await PluginResolver(self.client, host).resolve(parsed)
            target = resolved.reference
        result = await pull_plugin(
            self.client,
            target,
            self.plugin_dir,
            verifier=self.client.verifier,
            progress=progress,
        )
        entry = LockEntry(
            reference=str(parsed),
            digest=result.digest,
            file_name=result.path.name,
            file_sha256=result.file_sha256,
            verification=_recorded(result),
        )
        for old in self.lockfile.entries():
            if old.file_name != entry.file_name and self._same_repository(old, parsed):
                self.lockfile.discard(old.file_name)
                with contextlib.suppress(FileNotFoundError):
                    (self.plugin_dir / old.file_name).unlink()
        self.lockfile.put(entry)
        self.lockfile.save()
        return entry

    async def install_locked(self, progress: ProgressCallback | None = None) -> list[LockEntry]:
        """Make the directory hold exactly what the lockfile names: every file
        that is missing or changed is downloaded again by its manifest digest,
        and must have the locked SHA-256 (checked before it is written).  The
        lockfile itself is not changed.  Returns the entries (re)installed."""
        installed = []
        for entry in self.lockfile.entries():
            path = self.plugin_dir / entry.file_name
            if self.lockfile.check(path) is IntegrityStatus.OK:
                continue
            pinned = self.client.parse(entry.reference).with_digest(entry.digest)
            result = await pull_plugin(
                self.client,
                pinned,
                self.plugin_dir,
                verifier=self.client.verifier,
                progress=progress,
                expected_file_sha256=entry.file_sha256,
            )
            if result.path.name != entry.file_name:
                result.path.unlink()
                raise IntegrityError(
                    f"{pinned}: the artifact installs as {result.path.name}, "
                    f"the lockfile names {entry.file_name}",
                    reference=str(pinned),
                )
            installed.append(entry)
        return installed

    def list(self) -> list[LockEntry]:
        """The lockfile's entries."""
        return self.lockfile.entries()

    def remove(self, ref: str | PluginReference) -> LockEntry:
        """Remove the plugin installed from ``ref``'s repository (any tag):
        its file and its lockfile entry.  ``RegistryNotFoundError`` when
        nothing was installed from there."""
        parsed = self.client.parse(ref)
        for entry in self.lockfile.entries():
            if self._same_repository(entry, parsed):
                self.lockfile.discard(entry.file_name)
                self.lockfile.save()
                with contextlib.suppress(FileNotFoundError):
                    (self.plugin_dir / entry.file_name).unlink()
                return entry
        raise RegistryNotFoundError(
            f"{parsed.registry}/{parsed.repository} is not installed in {self.plugin_dir}",
            reference=str(parsed),
        )


__all__ = ["PluginInstaller"]
