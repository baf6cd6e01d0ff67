"""PluginLockfile on its own: format, atomic writes, statuses, bad files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drasi_host import IntegrityStatus, LockEntry, PluginIntegrityError, PluginLockfile
from drasi_host.lockfile import IntegrityReport, LockedVerification, file_sha256


def _entry(name: str, data: bytes, reference: str = "ghcr.io/ns/source/x:1") -> LockEntry:
    return LockEntry(
        reference=reference,
        digest="sha256:" + "1" * 64,
        file_name=name,
        file_sha256=hashlib.sha256(data).hexdigest(),
        verification=LockedVerification("verified", "https://issuer", "someone"),
    )


def test_missing_file_is_empty(tmp_path: Path) -> None:
    lock = PluginLockfile.load(tmp_path / "plugins.lock")
    assert len(lock) == 0 and lock.entries() == []
    assert lock.check(tmp_path / "libdrasi_source_x.so") is IntegrityStatus.NO_ENTRY


def test_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / "plugins.lock"
    lock = PluginLockfile(path, [_entry("libb.so", b"b"), _entry("liba.so", b"a")])
    lock.save()
    text = path.read_text()
    document = json.loads(text)
    assert document["lockfile_version"] == 1
    assert [p["file_name"] for p in document["plugins"]] == ["liba.so", "libb.so"]
    assert text.endswith("\n") and text.count("\n") > 20  # one field a line
    again = PluginLockfile.load(path)
    assert again.entries() == lock.entries()
    assert again.dumps() == text
    assert os.listdir(tmp_path) == ["plugins.lock"]  # no temporary file left


def test_statuses(tmp_path: Path) -> None:
    (tmp_path / "liba.so").write_bytes(b"a")
    (tmp_path / "libb.so").write_bytes(b"changed")
    (tmp_path / "libc.so").write_bytes(b"c")
    lock = PluginLockfile(
        tmp_path / "plugins.lock",
        [_entry("liba.so", b"a"), _entry("libb.so", b"b"), _entry("libgone.so", b"g")],
    )
    assert lock.check(tmp_path / "liba.so") is IntegrityStatus.OK
    assert lock.check(tmp_path / "libb.so") is IntegrityStatus.TAMPERED
    assert lock.check(tmp_path / "libc.so") is IntegrityStatus.NO_ENTRY
    assert lock.check(tmp_path / "libgone.so") is IntegrityStatus.MISSING
    lock.verify(tmp_path / "liba.so")
    for name, status in (
        ("libb.so", "tampered"),
        ("libc.so", "no_entry"),
        ("libgone.so", "missing"),
    ):
        with pytest.raises(PluginIntegrityError, match=status) as info:
            lock.verify(tmp_path / name)
        assert info.value.plugin == name
    reports = lock.check_directory()
    assert [(r.file_name, r.status) for r in reports] == [
        ("liba.so", IntegrityStatus.OK),
        ("libb.so", IntegrityStatus.TAMPERED),
        ("libc.so", IntegrityStatus.NO_ENTRY),
        ("libgone.so", IntegrityStatus.MISSING),
    ]
    assert all(isinstance(r, IntegrityReport) and r.reason for r in reports)


def test_put_replaces_and_discard(tmp_path: Path) -> None:
    lock = PluginLockfile(tmp_path / "plugins.lock", [_entry("liba.so", b"a")])
    lock.put(_entry("liba.so", b"a2"))
    assert len(lock) == 1 and lock.get("liba.so") == _entry("liba.so", b"a2")
    assert lock.discard("liba.so") is not None and lock.discard("liba.so") is None
    assert "liba.so" not in lock


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "plugins.lock"
    PluginLockfile(path, [_entry("liba.so", b"a")]).save()
    before = os.stat(path).st_ino
    PluginLockfile(path, [_entry("libb.so", b"b")]).save()
    assert os.stat(path).st_ino != before  # a new file renamed over the old one
    assert [e.file_name for e in PluginLockfile.load(path).entries()] == ["libb.so"]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"lockfile_version": 2, "plugins": []}',
        '{"lockfile_version": 1}',
        '{"lockfile_version": 1, "plugins": [1]}',
        '{"lockfile_version": 1, "plugins": [{"file_name": "x"}]}',
    ],
)
def test_malformed_lockfiles_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plugins.lock"
    path.write_text(text)
    with pytest.raises(PluginIntegrityError, match="lockfile"):
        PluginLockfile.load(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("file_name", "../libevil.so"),
        ("file_name", "sub/liba.so"),
        ("file_sha256", "ABC"),
        ("file_sha256", "g" * 64),
        ("verification", {"issuer": "x"}),
        ("verification", {"status": "verified", "subject": 3}),
        ("reference", ""),
    ],
)
def test_bad_entries_are_refused(tmp_path: Path, field: str, value: object) -> None:
    entry = _entry("liba.so", b"a").to_json()
    entry[field] = value
    path = tmp_path / "plugins.lock"
    path.write_text(json.dumps({"lockfile_version": 1, "plugins": [entry]}))
    with pytest.raises(PluginIntegrityError):
        PluginLockfile.load(path)


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    entry = _entry("liba.so", b"a").to_json()
    path = tmp_path / "plugins.lock"
    path.write_text(json.dumps({"lockfile_version": 1, "plugins": [entry, entry]}))
    with pytest.raises(PluginIntegrityError, match="listed twice"):
        PluginLockfile.load(path)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=3000), flip=st.integers(min_value=0))
def test_any_changed_byte_is_tampered(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, flip: int
) -> None:
    directory = tmp_path_factory.mktemp("flip")
    path = directory / "libx.so"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    lock = PluginLockfile(directory / "plugins.lock", [_entry("libx.so", data)])
    assert lock.check(path) is IntegrityStatus.OK
    changed = bytearray(data + b"\0")
    changed[flip % len(changed)] ^= 0x80
    path.write_bytes(bytes(changed))
    assert lock.check(path) is IntegrityStatus.TAMPERED


def test_hash_of_an_open_descriptor(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    path = tmp_path / "liba.so"
    path.write_bytes(data)
    lock = PluginLockfile(tmp_path / "plugins.lock", [_entry("liba.so", data)])
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        assert file_sha256(fd) == hashlib.sha256(data).hexdigest() == file_sha256(path)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5  # offset untouched, still open
        (tmp_path / "new").write_bytes(b"other")
        os.replace(tmp_path / "new", path)  # the open file is what counts
        lock.verify(path, fd=fd)
        assert lock.check(path) is IntegrityStatus.TAMPERED
    finally:
        os.close(fd)
