"""fetch_plugin: file://, http:// (a real local HTTP server) and OCI."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import metadata, push_plugin
from registry_servers import RegistryServer

from drasi_host.errors import RegistryError
from drasi_host.registry.fetcher import SourceType, fetch_plugin, sidecar_name, url_filename
from drasi_host.registry.oci import OciRegistryClient
from drasi_host.registry.resolver import HostVersionInfo

pytestmark = pytest.mark.anyio
LINUX = HostVersionInfo("0.4.2", "0.4.1", "0.4.0", "x86_64-unknown-linux-gnu")


class _FileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    files: dict[str, bytes] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/files/" + path[len("/redirect/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.files.get(path)
        if body is None:
            self.send_response(404, "Not Found")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def http_server(plugin_binary: bytes) -> Iterator[str]:
    class Handler(_FileHandler):
        files = {
            "/files/libdrasi_source_web.so": plugin_binary,
            "/files/big.so": b"x" * 5000,
            "/files/": b"index",
        }

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_file_uri(tmp_path: Path, plugin_binary: bytes) -> None:
    src_dir = tmp_path / "src dir"
    src_dir.mkdir()
    src = src_dir / "libdrasi_source_local.so"
    src.write_bytes(plugin_binary)
    src.chmod(0o600)
    (src_dir / "libdrasi_source_local.metadata.json").write_text('{"kind":"local"}')
    dest = tmp_path / "dest"
    result = await fetch_plugin(f"file://{src}", dest)
    assert result.source_type is SourceType.FILE
    assert result.filename == "libdrasi_source_local.so"
    assert result.path == dest / "libdrasi_source_local.so"
    assert result.uri == f"file://{src}"
    assert result.path.read_bytes() == plugin_binary
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o755
    assert (dest / "libdrasi_source_local.metadata.json").read_text() == '{"kind":"local"}'
    assert sorted(os.listdir(dest)) == [
        "libdrasi_source_local.metadata.json",
        "libdrasi_source_local.so",
    ]

    with pytest.raises(RegistryError, match="not an existing regular file"):
        await fetch_plugin(f"file://{src_dir}/missing.so", dest)
    with pytest.raises(RegistryError, match="not an existing regular file"):
        await fetch_plugin(f"file://{src_dir}", dest)
    with pytest.raises(RegistryError, match="exceeds the 10-byte limit"):
        await fetch_plugin(f"file://{src}", tmp_path / "small", max_size=10)
    assert os.listdir(tmp_path / "small") == []
    # no percent-decoding: the raw text is the path
    with pytest.raises(RegistryError, match="not an existing regular file"):
        await fetch_plugin(f"file://{str(src).replace(' ', '%20')}", dest)


async def test_http_uri(http_server: str, tmp_path: Path, plugin_binary: bytes) -> None:
    result = await fetch_plugin(f"{http_server}/files/libdrasi_source_web.so?x=1", tmp_path)
    assert result.source_type is SourceType.HTTP
    assert result.filename == "libdrasi_source_web.so"
    assert result.path.read_bytes() == plugin_binary
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o755
    result.path.unlink()

    redirected = await fetch_plugin(f"{http_server}/redirect/libdrasi_source_web.so", tmp_path)
    assert redirected.filename == "libdrasi_source_web.so"
    assert redirected.path.read_bytes() == plugin_binary
    redirected.path.unlink()

    with pytest.raises(RegistryError, match=f"HTTP 404 for {http_server}/files/nope.so: Not Found"):
        await fetch_plugin(f"{http_server}/files/nope.so", tmp_path)
    with pytest.raises(RegistryError, match="exceeds the 100-byte limit"):
        await fetch_plugin(f"{http_server}/files/big.so", tmp_path, max_size=100)
    with pytest.raises(RegistryError, match="no file name"):
        await fetch_plugin(f"{http_server}/", tmp_path)
    with pytest.raises(RegistryError, match="not a usable file name"):
        await fetch_plugin(f"{http_server}/files/..%2F..%2Fescape.so", tmp_path)
    assert os.listdir(tmp_path) == []


def test_url_and_sidecar_names() -> None:
    assert url_filename("https://h/a/b/libx.so") == "libx.so"
    assert url_filename("https://h/a/b/libx.so/") == "libx.so"
    assert url_filename("https://h/a/lib%20x.so?q=/y") == "lib x.so"
    for bad in ("https://h/a/%2e%2e", "https://h/a/x%5Cy.so", "https://h/a/%00"):
        with pytest.raises(RegistryError):
            url_filename(bad)
    assert sidecar_name("libx.so") == "libx.metadata.json"
    assert sidecar_name("libx.so.1") == "libx.so.metadata.json"
    assert sidecar_name("plugin") == "plugin.metadata.json"


@pytest.mark.registry
async def test_oci_reference(
    registry: RegistryServer, plugin_binary: bytes, tmp_path: Path
) -> None:
    async with OciRegistryClient(registry.config()) as client:
        digest = await push_plugin(
            client, "source/fetched:0.3.1-linux-amd64", plugin_binary, metadata(kind="fetched")
        )
        result = await fetch_plugin("source/fetched:0.3.1", tmp_path, client=client, host=LINUX)
        assert result.source_type is SourceType.OCI
        assert result.digest == digest
        assert result.filename == "libdrasi_source_fetched.so"
        assert result.path.read_bytes() == plugin_binary
        assert result.uri == "source/fetched:0.3.1"
    with pytest.raises(RegistryError, match="needs a registry client"):
        await fetch_plugin("source/fetched:0.3.1", tmp_path)
