"""Fetching a plugin library from a URI into a directory.

* ``file://<path>``: the raw text after the prefix is the path (no host, no
  percent-decoding); it must be a regular file.  It is copied, with its
  ``<stem>.metadata.json`` sidecar when there is one (sidecar errors ignored).
* ``http://`` / ``https://``: a GET (redirects followed); the file name is the
  last non-empty path segment, percent-decoded, and must be a plain name (no
  separator, not ``.``/``..``).
* anything else is an OCI reference: resolved for this host with
  :class:`PluginResolver` and downloaded (signature-checked when the client has
  a verifier) with :meth:`OciRegistryClient.download_plugin`.

Every write goes to a temporary file in the destination directory that is
fsynced, made executable (0755) and renamed into place; sizes are capped.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import anyio
import attrs
import httpx

from drasi_host.errors import RegistryError
from drasi_host.registry.distribution import ProgressCallback
from drasi_host.registry.materials import VerificationResult
from drasi_host.registry.oci import OciRegistryClient
from drasi_host.registry.resolver import HostVersionInfo, PluginResolver

log = logging.getLogger("drasi_host.registry")

DEFAULT_MAX_SIZE = 1024 * 1024 * 1024
_CHUNK = 64 * 1024


class SourceType(enum.Enum):
    """Where a fetched plugin came from."""

    FILE = "file"
    HTTP = "http"
    OCI = "oci"


@attrs.frozen
class FetchResult:
    """A fetched plugin library.  ``digest`` and ``verification`` are set for OCI."""

    path: Path
    filename: str
    source_type: SourceType
    uri: str
    digest: str | None = None
    verification: VerificationResult | None = None


def safe_filename(name: str, what: str) -> str:
    """``name`` if it is a plain file name, else ``RegistryError``."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name != name.strip()
    ):
        raise RegistryError(f"{what}: {name!r} is not a usable file name")
    return name


def sidecar_name(filename: str) -> str:
    """``libx.so`` -> ``libx.metadata.json`` (the last extension is replaced)."""
    stem, dot, _ = filename.rpartition(".")
    return f"{stem if dot else filename}.metadata.json"


def _install(tmp: Path, target: Path) -> None:
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


def _copy_atomically(src: Path, target: Path, max_size: int) -> None:
    size = src.stat().st_size
    if size > max_size:
        raise RegistryError(f"{src}: {size} bytes exceeds the {max_size}-byte limit")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        _install(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fetch_file(uri: str, dest: Path, max_size: int) -> FetchResult:
    src = Path(uri[len("file://") :])
    if not src.is_file():
        raise RegistryError(f"{uri}: not an existing regular file")
    filename = safe_filename(src.name, uri)
    target = dest / filename
    try:
        _copy_atomically(src, target, max_size)
    except OSError as exc:
        raise RegistryError(f"{uri}: cannot copy to {target}: {exc}") from exc
    sidecar = src.with_name(sidecar_name(src.name))
    if sidecar.is_file():
        try:
            _copy_atomically(sidecar, dest / sidecar_name(filename), max_size)
        except (OSError, RegistryError) as exc:
            log.debug("%s: sidecar %s not copied: %s", uri, sidecar, exc)
    return FetchResult(path=target, filename=filename, source_type=SourceType.FILE, uri=uri)


def url_filename(uri: str) -> str:
    """The file name an ``http(s)://`` URI names: its last non-empty path segment."""
    try:
        raw_path = httpx.URL(uri).raw_path.decode("ascii").partition("?")[0]
    except (httpx.InvalidURL, UnicodeDecodeError) as exc:
        raise RegistryError(f"{uri}: invalid URL: {exc}") from exc
    segments = [s for s in raw_path.split("/") if s]
    if not segments:
        raise RegistryError(f"{uri}: the URL has no file name")
    return safe_filename(urllib.parse.unquote(segments[-1]), uri)


async def _fetch_http(
    uri: str,
    dest: Path,
    max_size: int,
    timeout: float,
    http_client: httpx.AsyncClient | None,
    progress: ProgressCallback | None,
) -> FetchResult:
    filename = url_filename(uri)
    target = dest / filename
    own = http_client is None
    client = http_client or httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            async with client.stream("GET", uri) as response:
                if not 200 <= response.status_code < 300:
                    raise RegistryError(
                        f"HTTP {response.status_code} for {uri}: {response.reason_phrase}"
                    )
                length = response.headers.get("content-length", "")
                total = int(length) if length.isdigit() else 0
                if total > max_size:
                    raise RegistryError(f"{uri}: {total} bytes exceeds the {max_size}-byte limit")
                done = 0
                async for chunk in response.aiter_bytes(_CHUNK):
                    done += len(chunk)
                    if done > max_size:
                        raise RegistryError(f"{uri}: the body exceeds the {max_size}-byte limit")
                    out.write(chunk)
                    if progress is not None:
                        progress(done, total)
            out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        _install(tmp, target)
    except httpx.HTTPError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise RegistryError(f"{uri}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        if own:
            await client.aclose()
    return FetchResult(path=target, filename=filename, source_type=SourceType.HTTP, uri=uri)


async def fetch_plugin(
    uri: str,
    dest_dir: str | os.PathLike[str],
    *,
    client: OciRegistryClient | None = None,
    host: HostVersionInfo | None = None,
    http_client: httpx.AsyncClient | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
) -> FetchResult:
    """Fetch the plugin ``uri`` names into ``dest_dir`` (created if missing).

    OCI references need ``client``; ``host`` defaults to
    :meth:`HostVersionInfo.current`.  Raises ``RegistryError`` (or
    ``SignatureVerificationError``) on failure, leaving no partial file.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if uri.startswith("file://"):
        return await anyio.to_thread.run_sync(_fetch_file, uri, dest, max_size)
    if uri.startswith(("http://", "https://")):
        return await _fetch_http(uri, dest, max_size, timeout, http_client, progress)
    if client is None:
        raise RegistryError(f"{uri}: an OCI reference needs a registry client")
    resolver = PluginResolver(client, host if host is not None else HostVersionInfo.current())
    resolved = await resolver.resolve(uri)
    result = await client.download_plugin(resolved.reference, dest, progress=progress)
    return FetchResult(
        path=result.path,
        filename=result.path.name,
        source_type=SourceType.OCI,
        uri=uri,
        digest=result.digest,
        verification=result.verification,
    )


__all__ = [
    "FetchResult",
    "SourceType",
    "fetch_plugin",
    "safe_filename",
    "sidecar_name",
    "url_filename",
]
