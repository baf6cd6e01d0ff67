"""The plugin lockfile: what was installed, from where, and the hash of each file.

``plugins.lock`` is a JSON document (indented, keys sorted, so it reads and
diffs as text) listing one :class:`LockEntry` per plugin file: the reference
it was installed from, the OCI manifest digest, the file name, the SHA-256 of
the file, the signature result at install time and when it was installed.
It is always written atomically (temporary file, fsync, rename).

A loader given a lockfile (``PluginLoaderConfig(..., lockfile=...)``) opens
every file once, hashes that open file and loads the same open file, and
refuses anything :meth:`PluginLockfile.check` does not call ``OK``: a changed
file (``TAMPERED``), a file the lockfile does not list (``NO_ENTRY``), a
listed file that is gone (``MISSING``).  A missing lockfile is an empty one,
so nothing loads through it.

This module is part of the core package: checking needs no registry extra.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import PluginIntegrityError

__all__ = [
    "LOCKFILE_NAME",
    "IntegrityReport",
    "IntegrityStatus",
    "LockEntry",
    "LockedVerification",
    "PluginLockfile",
    "file_sha256",
]

#: The lockfile's usual name inside a plugin directory.
LOCKFILE_NAME = "plugins.lock"
LOCKFILE_VERSION = 1
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")
_CHUNK = 1024 * 1024


class IntegrityStatus(enum.Enum):
    """How a plugin file compares with the lockfile."""

    OK = "ok"
    TAMPERED = "tampered"
    NO_ENTRY = "no_entry"
    MISSING = "missing"


@attrs.frozen
class LockedVerification:
    """The signature result recorded at install time: ``status`` is
    ``"verified"``, ``"unsigned"`` or ``"invalid"``."""

    status: str
    issuer: str | None = None
    subject: str | None = None


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@attrs.frozen
class LockEntry:
    """One installed plugin file."""

    reference: str
    digest: str
    file_name: str
    file_sha256: str
    verification: LockedVerification = attrs.field(factory=lambda: LockedVerification("unsigned"))
    installed_at: str = attrs.field(factory=_utc_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "file_name": self.file_name,
            "file_sha256": self.file_sha256,
            "verification": attrs.asdict(self.verification),
            "installed_at": self.installed_at,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> LockEntry:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: an entry is not an object")
        strings = {}
        for key in ("reference", "digest", "file_name", "file_sha256", "installed_at"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}: entry field {key!r} is missing or not a string")
            strings[key] = value
        name = strings["file_name"]
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"{where}: file_name {name!r} is not a plain file name")
        sha = strings["file_sha256"]
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"{where}: file_sha256 of {name} is not a SHA-256 hex digest")
        verification = data.get("verification")
        if not isinstance(verification, Mapping) or not isinstance(verification.get("status"), str):
            raise ValueError(f"{where}: verification of {name} is missing its status")
        optional = {k: verification.get(k) for k in ("issuer", "subject")}
        if any(v is not None and not isinstance(v, str) for v in optional.values()):
            raise ValueError(f"{where}: verification of {name} is malformed")
        return cls(verification=LockedVerification(verification["status"], **optional), **strings)


@attrs.frozen
class IntegrityReport:
    """The check of one file: its name, status and a human-readable reason."""

    file_name: str
    status: IntegrityStatus
    reason: str

    @property
    def ok(self) -> bool:
        return self.status is IntegrityStatus.OK


def file_sha256(path: Path | str | int) -> str:
    """The SHA-256 (hex) of the file at ``path``, read in chunks.  ``path``
    may be an open file descriptor: then the whole file is read from offset
    0 with ``pread`` (its offset is not moved) and the descriptor stays open."""
    digest = hashlib.sha256()
    if isinstance(path, int):
        offset = 0
        while chunk := os.pread(path, _CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class PluginLockfile:
    """The entries of one lockfile, keyed by file name."""

    def __init__(self, path: Path | str, entries: Iterable[LockEntry] = ()) -> None:
        self.path = Path(path)
        self._entries: dict[str, LockEntry] = {}
        for entry in entries:
            self._entries[entry.file_name] = entry

    # -- reading and writing --------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> PluginLockfile:
        """The lockfile at ``path``; a missing file is an empty lockfile.  A
        file that cannot be read or parsed raises :class:`PluginIntegrityError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise PluginIntegrityError(f"cannot read the lockfile {path}: {exc}") from exc
        try:
            document = json.loads(text)
            if not isinstance(document, Mapping):
                raise ValueError(f"{path}: not a JSON object")
            if document.get("lockfile_version") != LOCKFILE_VERSION:
                raise ValueError(
                    f"{path}: unsupported lockfile_version {document.get('lockfile_version')!r}"
                )
            plugins = document.get("plugins")
            if not isinstance(plugins, list):
                raise ValueError(f"{path}: 'plugins' is not a list")
            entries = [LockEntry.from_json(item, str(path)) for item in plugins]
        except ValueError as exc:
            raise PluginIntegrityError(f"invalid lockfile: {exc}") from exc
        names = [entry.file_name for entry in entries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise PluginIntegrityError(f"invalid lockfile {path}: {duplicates} listed twice")
        return cls(path, entries)

    def dumps(self) -> str:
        """The lockfile's text."""
        document = {
            "lockfile_version": LOCKFILE_VERSION,
            "plugins": [entry.to_json() for entry in self.entries()],
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def save(self) -> None:
        """Write the lockfile atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.dumps())
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- entries ------------------------------------------------------------------------

    def entries(self) -> list[LockEntry]:
        """Every entry, by file name."""
        return [self._entries[name] for name in sorted(self._entries)]

    def get(self, file_name: str) -> LockEntry | None:
        return self._entries.get(file_name)

    def put(self, entry: LockEntry) -> None:
        """Add ``entry``, replacing the entry of the same file."""
        self._entries[entry.file_name] = entry

    def discard(self, file_name: str) -> LockEntry | None:
        """Remove the entry of ``file_name``; returns it (None if absent)."""
        return self._entries.pop(file_name, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, file_name: object) -> bool:
        return file_name in self._entries

    # -- checking ---------------------------------------------------------------------

    def report(self, path: Path | str, *, fd: int | None = None) -> IntegrityReport:
        """How the file at ``path`` compares with its entry, with the reason.
        With ``fd`` (the file at ``path``, already opened by the caller) that
        open file is hashed rather than whatever ``path`` names now."""
        path = Path(path)
        entry = self._entries.get(path.name)
        if entry is None:
            return IntegrityReport(
                path.name, IntegrityStatus.NO_ENTRY, f"not listed in the lockfile {self.path}"
            )
        try:
            actual = file_sha256(path if fd is None else fd)
        except FileNotFoundError:
            return IntegrityReport(path.name, IntegrityStatus.MISSING, f"{path} does not exist")
        except OSError as exc:
            return IntegrityReport(path.name, IntegrityStatus.MISSING, f"cannot read {path}: {exc}")
        if actual != entry.file_sha256:
            return IntegrityReport(
                path.name,
                IntegrityStatus.TAMPERED,
                f"sha256 {actual} differs from the locked {entry.file_sha256} "
                f"(installed from {entry.reference})",
            )
        return IntegrityReport(path.name, IntegrityStatus.OK, f"matches {entry.reference}")

    def check(self, path: Path | str) -> IntegrityStatus:
        """``OK``, ``TAMPERED``, ``NO_ENTRY`` or ``MISSING`` for the file at ``path``."""
        return self.report(path).status

    def verify(self, path: Path | str, *, fd: int | None = None) -> None:
        """Raise :class:`PluginIntegrityError` unless the file at ``path`` (or
        the open file ``fd``, as in :meth:`report`) is ``OK``."""
        report = self.report(path, fd=fd)
        if not report.ok:
            raise PluginIntegrityError(
                f"refused by the lockfile ({report.status.value}): {report.reason}", path
            )

    def check_directory(self, directory: Path | str | None = None) -> list[IntegrityReport]:
        """A report for every entry and every library file in ``directory``
        (default: the lockfile's directory), by file name."""
        directory = Path(directory) if directory is not None else self.path.parent
        names = set(self._entries)
        if directory.is_dir():
            names.update(
                child.name
                for child in directory.iterdir()
                if child.suffix in _LIBRARY_SUFFIXES and not child.name.startswith(".")
            )
        return [self.report(directory / name) for name in sorted(names)]
