"""Fixtures for the registry tests.

* ``registry`` / ``auth_registry``: session-scoped REAL registry servers
  (Debian's ``docker-registry``, distribution 2.8) on 127.0.0.1, the second with
  htpasswd (bcrypt) basic auth.  Without the binary the tests are skipped,
  unless ``CI`` is set, where that is a failure.
* ``mini_registry``: the in-process server of ``mini_registry.py`` for bearer
  tokens, ``Link`` pagination, the referrers API and fault injection.
* ``plugin_binary``: a shared library compiled with ``cc`` (random bytes when
  there is no compiler).
* ``anyio_backend``: asyncio and trio.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mini_registry import MiniRegistry
from registry_servers import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    RegistryServer,
    start_registry,
)

from drasi_host.registry.oci import RegistryAuth


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    import bcrypt

    directory = tmp_path_factory.mktemp("auth-registry")
    hashed = bcrypt.hashpw(REGISTRY_PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    htpasswd = directory / "htpasswd"
    htpasswd.write_bytes(REGISTRY_USER.encode() + b":" + hashed.replace(b"$2b$", b"$2y$") + b"\n")
    server = start_registry(directory, htpasswd)
    server.auth = RegistryAuth.basic(REGISTRY_USER, REGISTRY_PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry of this test's own (for tests that kill it)."""
    server = start_registry(tmp_path / "own-registry")
    yield server
    server.stop()


@pytest.fixture
def mini_registry_factory() -> Iterator[Callable[..., MiniRegistry]]:
    servers: list[MiniRegistry] = []

    def make(**kwargs: object) -> MiniRegistry:
        server = MiniRegistry(**kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


_PLUGIN_C = r"""
#include <string.h>
const char *drasi_test_plugin_kind(void) { return "testsrc"; }
int drasi_test_plugin_add(int a, int b) { return a + b; }
"""


@pytest.fixture(scope="session")
def plugin_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real shared library (about 16 KiB)."""
    directory = tmp_path_factory.mktemp("plugin-src")
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return os.urandom(16384)
    source = directory / "plugin.c"
    source.write_text(_PLUGIN_C)
    output = directory / "libdrasi_source_testsrc.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(output), str(source)],
        check=True,
        capture_output=True,
    )
    return output.read_bytes()
