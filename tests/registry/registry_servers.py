"""Starting the registry servers the tests talk to: Debian's docker-registry
(a real distribution 2.8 server, as a subprocess) and the in-process mini server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import attrs
import httpx
import pytest
from mini_registry import MiniRegistry
from registry_helpers import unique_namespace

from drasi_host.registry.oci import RegistryAuth, RegistryConfig

REGISTRY_USER = "drasi"
REGISTRY_PASSWORD = "s3cret-pw"


def _registry_binary() -> str:
    found = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if os.path.exists("/usr/bin/docker-registry") else None
    )
    if found is None:
        reason = (
            "docker-registry is not installed (apt-get install -y docker-registry apache2-utils)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class RegistryServer:
    """A running docker-registry process."""

    host: str
    process: subprocess.Popen[bytes]
    root: Path
    log_path: Path
    auth: RegistryAuth = attrs.field(factory=RegistryAuth.anonymous)

    def config(self, namespace: str | None = None, **kwargs: object) -> RegistryConfig:
        """A client config for a fresh namespace on this registry."""
        options: dict[str, object] = {
            "default_registry": f"{self.host}/{namespace or unique_namespace()}",
            "auth": self.auth,
            "insecure_registries": [self.host],
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "timeout": 10.0,
        }
        options.update(kwargs)
        return RegistryConfig(**options)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_registry(directory: Path, htpasswd: Path | None = None) -> RegistryServer:
    """Start docker-registry with a generated config and wait for ``/v2/``."""
    binary = _registry_binary()
    port = _free_port()
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: drasi-test\n    path: {htpasswd}\n"
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: drasi-test-secret\n" + auth
    )
    log_path = directory / "registry.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = RegistryServer(
        host=f"127.0.0.1:{port}", process=process, root=directory, log_path=log_path
    )
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log_path.read_text()}")
        try:
            status = httpx.get(f"http://{server.host}/v2/", timeout=1).status_code
            if status in (200, 401):
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"docker-registry did not answer: {log_path.read_text()}")
        time.sleep(0.05)


def mini_config(server: MiniRegistry, **kwargs: object) -> RegistryConfig:
    options: dict[str, object] = {
        "default_registry": f"{server.host}/{unique_namespace()}",
        "insecure_registries": [server.host],
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "timeout": 10.0,
    }
    options.update(kwargs)
    return RegistryConfig(**options)  # type: ignore[arg-type]
