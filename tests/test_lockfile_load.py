"""Loading through a lockfile loads exactly what was hashed.

The loader opens a locked plugin file once, hashes that open file and
``dlopen``s the same open file, so a file replaced after it was opened (here:
right after it was hashed, through a hook on the hashing function) still loads
the content that was checked.  Real fixture libraries: the ``source`` fixture
is locked, the ``reaction`` fixture replaces it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drasi_host import (
    CallbackContext,
    LockEntry,
    PluginIntegrityError,
    PluginLoader,
    PluginLoaderConfig,
    PluginLoadError,
    PluginLockfile,
)
from drasi_host import loader as loader_module
from drasi_host import lockfile as lockfile_module
from drasi_host.loader import load_plugin

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

NAME = "libdrasi_locked.so"


def _lock(directory: Path, *files: Path) -> PluginLoader:
    """Lock ``files`` (by content, under their own names) and return a loader."""
    lock = PluginLockfile(directory / "plugins.lock")
    for file in files:
        sha = hashlib.sha256(file.read_bytes()).hexdigest()
        lock.put(LockEntry("example.org/source/locked:1", "sha256:" + "0" * 64, file.name, sha))
    lock.save()
    return PluginLoader(PluginLoaderConfig(directory, lockfile=directory / "plugins.lock"))


@pytest.fixture
def locked(tmp_path: Path, fixture_plugins: dict[str, Path]) -> Iterator[Path]:
    """A private copy of the source fixture as ``NAME``, in a fresh directory."""
    target = tmp_path / NAME
    shutil.copy2(fixture_plugins["source"], target)
    yield target


def _swap_after_hashing(
    monkeypatch: pytest.MonkeyPatch, target: Path, replacement: Path
) -> list[int]:
    """Replace ``target`` by a copy of ``replacement`` right after the loader has
    hashed its open file; returns the descriptors that were hashed."""
    original = lockfile_module.file_sha256
    hashed: list[int] = []

    def hash_then_swap(path: Path | str | int) -> str:
        digest = original(path)
        if isinstance(path, int) and not hashed:
            hashed.append(path)
            staging = target.with_name(".staging.so")
            shutil.copy2(replacement, staging)
            os.replace(staging, target)
        return digest

    monkeypatch.setattr(lockfile_module, "file_sha256", hash_then_swap)
    return hashed


def _mapped_paths(target: Path) -> set[str]:
    """How /proc/self/maps names the mappings of ``target``'s directory."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {line.split(None, 5)[5] for line in lines if str(target.parent) in line}


def test_file_replaced_after_open_loads_what_was_hashed(
    locked: Path,
    fixture_plugins: dict[str, Path],
    callbacks: CallbackContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loader = _lock(locked.parent, locked)
    hashed = _swap_after_hashing(monkeypatch, locked, fixture_plugins["reaction"])
    with loader.load_plugin(locked, callbacks) as plugin:
        assert hashed, "the loader hashed an open descriptor"
        # The path now holds the reaction fixture ...
        assert locked.read_bytes() == fixture_plugins["reaction"].read_bytes()
        # ... but what was loaded is the source fixture that was hashed:
        assert [p.kind for p in plugin.source_plugins] == ["fixture"]
        assert plugin.reaction_plugins == []
        # the mapped file is the replaced (unlinked) original, not the new file
        assert f"{locked} (deleted)" in _mapped_paths(locked)
    # The next load hashes the new content, which the lockfile refuses.
    monkeypatch.undo()
    with pytest.raises(PluginIntegrityError, match="tampered"):
        loader.load_plugin(locked, callbacks)


def test_updated_lock_loads_the_new_content(
    locked: Path, fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    with _lock(locked.parent, locked).load_plugin(locked, callbacks) as plugin:
        assert [p.kind for p in plugin.source_plugins] == ["fixture"]
    staging = locked.with_name(".staging.so")
    shutil.copy2(fixture_plugins["reaction"], staging)
    os.replace(staging, locked)
    # Same path, new locked content: not the library opened before under that path.
    with _lock(locked.parent, locked).load_plugin(locked, callbacks) as plugin:
        assert plugin.source_plugins == []
        assert [p.kind for p in plugin.reaction_plugins] == ["fixture"]


def test_loading_again_reuses_the_library_and_its_descriptor(
    locked: Path, callbacks: CallbackContext
) -> None:
    loader = _lock(locked.parent, locked)
    with loader.load_plugin(locked, callbacks):
        pass
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with loader.load_plugin(locked, callbacks) as plugin:
            assert [p.kind for p in plugin.source_plugins] == ["fixture"]
    assert len(os.listdir("/proc/self/fd")) == before


def test_without_proc_a_replaced_file_is_refused(
    locked: Path,
    fixture_plugins: dict[str, Path],
    callbacks: CallbackContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader_module, "_FD_DIR", locked.parent / "no-proc")
    loader = _lock(locked.parent, locked)
    _swap_after_hashing(monkeypatch, locked, fixture_plugins["reaction"])
    with pytest.raises(PluginIntegrityError, match="replaced while it was being opened"):
        loader.load_plugin(locked, callbacks)


def test_without_proc_an_unchanged_file_loads(
    tmp_path: Path,
    fixture_plugins: dict[str, Path],
    callbacks: CallbackContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader_module, "_FD_DIR", tmp_path / "no-proc")
    target = tmp_path / "libdrasi_by_path.so"
    shutil.copy2(fixture_plugins["source"], target)
    with _lock(tmp_path, target).load_plugin(target, callbacks) as plugin:
        assert [p.kind for p in plugin.source_plugins] == ["fixture"]


def test_refusals_before_anything_is_loaded(
    tmp_path: Path, fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    listed = tmp_path / "libdrasi_listed.so"
    shutil.copy2(fixture_plugins["source"], listed)
    loader = _lock(tmp_path, listed)
    listed.unlink()
    with pytest.raises(PluginIntegrityError, match="missing"):
        loader.load_plugin(listed, callbacks)
    unlisted = tmp_path / "libdrasi_unlisted.so"
    shutil.copy2(fixture_plugins["source"], unlisted)
    with pytest.raises(PluginIntegrityError, match="no_entry"):
        loader.load_plugin(unlisted, callbacks)
    # A FIFO under a listed name is refused at once (opening it does not block).
    os.mkfifo(listed)
    with pytest.raises(PluginLoadError, match="not a regular file"):
        loader.load_plugin(listed, callbacks)
    # Without a lockfile the same directory loads as before.
    with load_plugin(unlisted, callbacks) as plugin:
        assert [p.kind for p in plugin.source_plugins] == ["fixture"]
