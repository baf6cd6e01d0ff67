"""An async client for OCI (distribution-spec) registries holding Drasi plugins.

Transport is one ``httpx.AsyncClient`` (works under asyncio and trio).  Every
request goes through two layers:

* ``_send_raw``: one HTTP exchange with bounded retries (exponential backoff,
  ``Retry-After`` honoured up to the backoff cap) on connection errors,
  timeouts, 429 and 5xx;
* ``_send``: adds authentication.  The first request to a registry probes
  ``/v2/``: no challenge means anonymous, a ``Basic`` challenge means the
  configured credentials on every request, a ``Bearer`` challenge means a token
  from the challenge's realm (``scope=repository:<repo>:<actions>``, sent with
  the credentials if any), cached per registry/repository/actions until the
  JWT ``exp`` (or ``expires_in``).  A later 401 carrying a new challenge is
  followed once.

Registries are reached over HTTPS, except hosts listed in
``RegistryConfig.insecure_registries`` (plain HTTP).

Everything held in memory (manifests, tag pages, metadata and signature blobs)
is capped by ``RegistryConfig.max_manifest_size`` / ``max_blob_size``; plugin
binaries are streamed to a temporary file in the destination directory while
hashed, checked against their descriptor (size and digest), fsynced, made
executable and renamed into place, so a failed download leaves nothing behind.
With a signature verifier configured and enabled, ``download_plugin`` checks the
signature of the manifest digest before it downloads anything and refuses
(``SignatureVerificationError``) unless the result is ``VERIFIED``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import attrs
import httpx

from drasi_host.errors import RegistryError, SignatureVerificationError
from drasi_host.registry._semver import version_sort_key
from drasi_host.registry.artifact import (
    ANN_KIND,
    ANN_TYPE,
    DIRECTORY_REPOSITORY,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    PLUGIN_BINARY,
    PLUGIN_LAYER_TYPES,
    PLUGIN_METADATA,
    SAFE_NAME_RE,
    Descriptor,
    Manifest,
    PluginArtifactMetadata,
    check_digest_syntax,
    digest_matches,
    new_hasher,
    sha256_digest,
)
from drasi_host.registry.platform import (
    current_target_triple,
    library_filename,
    strip_arch_suffix,
    triple_to_platform,
)
from drasi_host.registry.reference import (
    DEFAULT_REGISTRY,
    PluginReference,
    as_reference,
    split_default_registry,
)

if TYPE_CHECKING:
    from drasi_host.registry.cosign import CosignVerifier, VerificationResult

log = logging.getLogger("drasi_host.registry")

#: ``progress(done_bytes, total_bytes)``, called as a download advances.
ProgressCallback = Callable[[int, int], None]

_CHUNK = 64 * 1024
_ERROR_BODY_CAP = 4096
_TOKEN_MARGIN = 10.0
_USER_AGENT = "drasi-host"


@attrs.frozen
class RegistryAuth:
    """Credentials for registries: anonymous, or a username and password."""

    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def anonymous(cls) -> RegistryAuth:
        return cls()

    @classmethod
    def basic(cls, username: str, password: str) -> RegistryAuth:
        return cls(username=username, password=password)

    @property
    def is_anonymous(self) -> bool:
        return self.username is None

    def header(self) -> str | None:
        """The ``Authorization: Basic`` value, or None when anonymous."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@attrs.frozen
class RegistryConfig:
    """How to reach registries.

    ``timeout`` is per network operation (connect, each read, ...), in seconds.
    ``max_retries`` bounds the retries after a first attempt that hit a
    connection error, a timeout, 429 or 5xx; the wait doubles from
    ``backoff_base`` up to ``backoff_max`` seconds.  ``max_manifest_size`` caps
    manifests, indexes and tag-list pages; ``max_blob_size`` caps blobs held in
    memory (metadata layers, signatures); ``max_plugin_size`` caps the plugin
    binary streamed to disk; ``max_tag_pages`` bounds ``Link`` pagination.
    ``verify_tls`` is passed to httpx (True, False or a CA bundle path).
    """

    default_registry: str = DEFAULT_REGISTRY
    auth: RegistryAuth = attrs.field(factory=RegistryAuth.anonymous)
    insecure_registries: Sequence[str] = attrs.field(default=(), converter=tuple)
    timeout: float = 30.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_manifest_size: int = 4 * 1024 * 1024
    max_blob_size: int = 4 * 1024 * 1024
    max_plugin_size: int = 1024 * 1024 * 1024
    max_tag_pages: int = 1000
    verify_tls: bool | str = True


@attrs.frozen
class DownloadResult:
    """A downloaded plugin: where it is, the manifest digest it came from, and
    the signature verification result (None without a verifier)."""

    path: Path
    digest: str
    verification: VerificationResult | None = None
    size: int = 0


@attrs.frozen
class PluginVersion:
    """One published version of a plugin and the platform suffixes it has."""

    version: str
    suffixes: tuple[str, ...]


@attrs.frozen
class PluginSearchResult:
    """A plugin found in the directory.  ``error`` is set (and ``versions`` is
    empty) when its tags could not be listed."""

    type: str
    kind: str
    reference: str
    full_reference: str
    versions: tuple[PluginVersion, ...] = ()
    error: str | None = None


@attrs.frozen
class _Challenge:
    scheme: str  # "none", "basic" or "bearer"
    realm: str | None = None
    service: str | None = None


_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def _parse_challenge(header: str | None) -> _Challenge | None:
    if not header:
        return None
    scheme, _, params_text = header.strip().partition(" ")
    params = {
        m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _PARAM_RE.finditer(params_text)
    }
    if scheme.lower() == "bearer":
        if not params.get("realm"):
            return None
        return _Challenge("bearer", realm=params["realm"], service=params.get("service"))
    return _Challenge("basic")


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    for match in _LINK_RE.finditer(header):
        if re.search(r'rel\s*=\s*"?next"?', match[2] or ""):
            return match[1]
    return None


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OciRegistryClient:
    """Reads (and, for publishing, writes) plugin artifacts in OCI registries."""

    def __init__(
        self, config: RegistryConfig | None = None, verifier: CosignVerifier | None = None
    ) -> None:
        self.config = config if config is not None else RegistryConfig()
        self.verifier = verifier
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout),
            follow_redirects=True,
            verify=self.config.verify_tls,
            headers={"User-Agent": _USER_AGENT},
        )
        self._challenges: dict[str, _Challenge] = {}
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        if verifier is not None:
            verifier.bind(self)  # no-op when the verifier already has a client

    async def __aenter__(self) -> OciRegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # -- references and URLs -------------------------------------------------

    def parse(self, ref: str | PluginReference) -> PluginReference:
        """``ref`` parsed against this client's default registry."""
        return as_reference(ref, self.config.default_registry)

    def _base(self, registry: str) -> str:
        scheme = "http" if registry in self.config.insecure_registries else "https"
        return f"{scheme}://{registry}"

    def _url(self, ref: PluginReference, tail: str) -> str:
        return f"{self._base(ref.registry)}/v2/{ref.repository}/{tail}"

    # -- transport -------------------------------------------------------------

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        delay = min(self.config.backoff_base * (2.0**attempt), self.config.backoff_max)
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                delay = min(max(delay, float(retry_after)), self.config.backoff_max)
        return delay

    async def _send_raw(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One exchange with retries; returns the (unread, streaming) response."""
        attempt = 0
        while True:
            request = self._http.build_request(
                method, url, headers=dict(headers or {}), content=content
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise RegistryError(
                        f"{what}: {_describe(exc)} (after {attempt + 1} attempts)"
                    ) from exc
                log.debug("%s: %s; retrying", what, _describe(exc))
                await anyio.sleep(self._backoff(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if (status == 429 or status >= 500) and attempt < self.config.max_retries:
                await response.aclose()
                log.debug("%s: HTTP %d; retrying", what, status)
                await anyio.sleep(self._backoff(attempt, response))
                attempt += 1
                continue
            return response

    async def _challenge(self, registry: str) -> _Challenge:
        cached = self._challenges.get(registry)
        if cached is not None:
            return cached
        url = f"{self._base(registry)}/v2/"
        response = await self._send_raw("GET", url, what=f"GET {url}")
        await response.aclose()
        challenge = None
        if response.status_code == 401:
            challenge = _parse_challenge(response.headers.get("www-authenticate"))
        elif response.status_code >= 400 and response.status_code != 404:
            raise RegistryError(f"GET {url}: HTTP {response.status_code} {response.reason_phrase}")
        challenge = challenge or _Challenge("none")
        self._challenges[registry] = challenge
        return challenge

    async def _token(
        self, registry: str, repository: str, actions: str, challenge: _Challenge
    ) -> str:
        key = (registry, repository, actions)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        assert challenge.realm is not None
        scope = f"repository:{repository}:{actions}"
        url = httpx.URL(challenge.realm)
        if url.scheme not in ("http", "https"):
            raise RegistryError(f"{registry}: token realm {challenge.realm!r} is not HTTP(S)")
        params = {"scope": scope}
        if challenge.service:
            params["service"] = challenge.service
        url = url.copy_merge_params(params)
        headers: dict[str, str] = {}
        basic = self.config.auth.header()
        if basic is not None:
            if url.scheme != "https" and url.netloc.decode() not in self.config.insecure_registries:
                raise RegistryError(
                    f"{registry}: refusing to send credentials to the plain-HTTP token "
                    f"realm {challenge.realm} (list its host in insecure_registries)"
                )
            headers["Authorization"] = basic
        what = f"token request to {challenge.realm} for {scope}"
        response = await self._send_raw("GET", url, what=what, headers=headers)
        try:
            if response.status_code != 200:
                hint = (
                    ": check the registry credentials" if response.status_code in (401, 403) else ""
                )
                raise RegistryError(
                    f"{what}: HTTP {response.status_code} {response.reason_phrase}{hint}"
                )
            body = await self._read_capped(response, self.config.max_manifest_size, what)
        finally:
            await response.aclose()
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        token = None
        if isinstance(data, dict):
            token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: the response holds no token")
        lifetime: float = 60.0
        exp = _jwt_exp(token)
        if exp is not None:
            lifetime = exp - time.time()
        elif isinstance(data, dict) and isinstance(data.get("expires_in"), (int, float)):
            lifetime = float(data["expires_in"])
        self._tokens[key] = (token, time.monotonic() + lifetime - _TOKEN_MARGIN)
        return token

    async def _auth_headers(self, ref: PluginReference, actions: str) -> dict[str, str]:
        challenge = await self._challenge(ref.registry)
        if challenge.scheme == "basic":
            basic = self.config.auth.header()
            return {"Authorization": basic} if basic else {}
        if challenge.scheme == "bearer":
            token = await self._token(ref.registry, ref.repository, actions, challenge)
            return {"Authorization": f"Bearer {token}"}
        return {}

    async def _send(
        self,
        method: str,
        ref: PluginReference,
        url: str | httpx.URL,
        *,
        what: str,
        actions: str = "pull",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """An authenticated exchange; returns the unread response (caller closes it)."""
        reauthenticated = False
        while True:
            all_headers = dict(headers or {})
            all_headers.update(await self._auth_headers(ref, actions))
            response = await self._send_raw(
                method, url, what=what, headers=all_headers, content=content
            )
            if response.status_code != 401 or reauthenticated:
                return response
            challenge = _parse_challenge(response.headers.get("www-authenticate"))
            if challenge is None:
                return response
            await response.aclose()
            reauthenticated = True
            self._challenges[ref.registry] = challenge
            self._tokens.pop((ref.registry, ref.repository, actions), None)

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        ref: PluginReference,
        url: str | httpx.URL,
        *,
        what: str,
        actions: str = "pull",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        response = await self._send(
            method, ref, url, what=what, actions=actions, headers=headers, content=content
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response, cap: int, what: str) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise RegistryError(
                f"{what}: the response ({length} bytes) exceeds the {cap}-byte limit"
            )
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.aiter_bytes(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise RegistryError(f"{what}: the response exceeds the {cap}-byte limit")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what}: {_describe(exc)}") from exc
        return b"".join(chunks)

    async def _status_error(self, response: httpx.Response, what: str) -> RegistryError:
        detail = ""
        with contextlib.suppress(RegistryError):
            body = await self._read_capped(response, _ERROR_BODY_CAP, what)
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                errors = json.loads(body).get("errors") or []
                messages = [f"{e.get('code', '')}: {e.get('message', '')}" for e in errors]
                if messages:
                    detail = " (" + "; ".join(messages) + ")"
        hint = ""
        if response.status_code in (401, 403):
            hint = (
                ": authentication required"
                if self.config.auth.is_anonymous
                else ": check the registry credentials"
            )
        return RegistryError(
            f"{what}: HTTP {response.status_code} {response.reason_phrase}{detail}{hint}"
        )

    # -- reading ---------------------------------------------------------------

    async def list_tags(self, ref: str | PluginReference) -> list[str]:
        """All tags of the repository, following ``Link: <...>; rel="next"`` pages."""
        parsed = self.parse(ref)
        url = httpx.URL(self._url(parsed, "tags/list"))
        origin = (url.scheme, url.netloc)
        tags: list[str] = []
        seen_tags: set[str] = set()
        seen_urls: set[str] = set()
        what = f"list tags of {parsed.registry}/{parsed.repository}"
        next_url: httpx.URL | None = url
        while next_url is not None:
            if str(next_url) in seen_urls:
                raise RegistryError(f"{what}: pagination loops back to {next_url}")
            if len(seen_urls) >= self.config.max_tag_pages:
                raise RegistryError(f"{what}: more than {self.config.max_tag_pages} pages")
            seen_urls.add(str(next_url))
            async with self._open("GET", parsed, next_url, what=what) as response:
                if response.status_code != 200:
                    raise await self._status_error(response, what)
                body = await self._read_capped(response, self.config.max_manifest_size, what)
                link = _next_link(response.headers.get("link"))
                page_url = response.url
            try:
                data = json.loads(body)
            except ValueError:
                raise RegistryError(f"{what}: the tag list is not valid JSON") from None
            page = data.get("tags") if isinstance(data, dict) else None
            if page is None and isinstance(data, dict):
                page = []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(f"{what}: the tag list is malformed")
            for tag in page:
                if tag not in seen_tags:
                    seen_tags.add(tag)
                    tags.append(tag)
            next_url = page_url.join(link) if link else None
            if next_url is not None and (next_url.scheme, next_url.netloc) != origin:
                raise RegistryError(f"{what}: the next page {next_url} is on another host")
        return tags

    async def find_manifest(self, ref: str | PluginReference) -> Manifest | None:
        """The manifest or index ``ref`` names, or None if the registry has none."""
        parsed = self.parse(ref)
        what = f"get manifest {parsed}"
        url = self._url(parsed, f"manifests/{parsed.reference}")
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        async with self._open("GET", parsed, url, what=what, headers=headers) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise await self._status_error(response, what)
            raw = await self._read_capped(response, self.config.max_manifest_size, what)
            header_digest = response.headers.get("docker-content-digest")
            content_type = response.headers.get("content-type", "")
        if header_digest:
            check_digest_syntax(header_digest, f"{what}: Docker-Content-Digest")
            if not digest_matches(raw, header_digest):
                raise RegistryError(
                    f"{what}: the manifest does not match its Docker-Content-Digest {header_digest}"
                )
        digest = sha256_digest(raw)
        if parsed.digest:
            check_digest_syntax(parsed.digest, what)
            if not digest_matches(raw, parsed.digest):
                raise RegistryError(f"{what}: the manifest does not match the requested digest")
            digest = parsed.digest
        return Manifest.parse(raw, content_type, digest, what)

    async def get_manifest(self, ref: str | PluginReference) -> Manifest:
        """The manifest or index ``ref`` names (digest-checked)."""
        manifest = await self.find_manifest(ref)
        if manifest is None:
            raise RegistryError(f"get manifest {self.parse(ref)}: not found (HTTP 404)")
        return manifest

    async def fetch_manifest_annotations(self, ref: str | PluginReference) -> dict[str, str]:
        """The annotations of the image manifest ``ref`` names (an index is an error)."""
        manifest = await self.get_manifest(ref)
        if manifest.is_index:
            raise RegistryError(f"{self.parse(ref)} is an image index, not a plugin manifest")
        return manifest.annotations

    async def get_digest(self, ref: str | PluginReference) -> str:
        """The manifest digest ``ref`` currently names."""
        return (await self.get_manifest(ref)).digest

    async def get_referrers(self, ref: str | PluginReference, digest: str) -> Manifest | None:
        """The OCI referrers index of ``digest``, or None where the registry has no
        referrers API (404)."""
        parsed = self.parse(ref)
        check_digest_syntax(digest, f"referrers of {parsed}")
        what = f"get referrers of {parsed.registry}/{parsed.repository}@{digest}"
        url = self._url(parsed, f"referrers/{digest}")
        async with self._open(
            "GET", parsed, url, what=what, headers={"Accept": OCI_INDEX}
        ) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise await self._status_error(response, what)
            raw = await self._read_capped(response, self.config.max_manifest_size, what)
        manifest = Manifest.parse(raw, OCI_INDEX, sha256_digest(raw), what)
        if not manifest.is_index:
            raise RegistryError(f"{what}: the response is not an image index")
        return manifest

    async def fetch_blob(
        self, ref: str | PluginReference, descriptor: Descriptor, max_size: int | None = None
    ) -> bytes:
        """A blob into memory, size-capped and checked against its descriptor."""
        parsed = self.parse(ref)
        cap = self.config.max_blob_size if max_size is None else max_size
        what = f"get blob {descriptor.digest} of {parsed.registry}/{parsed.repository}"
        if descriptor.size > cap:
            raise RegistryError(f"{what}: {descriptor.size} bytes exceeds the {cap}-byte limit")
        url = self._url(parsed, f"blobs/{descriptor.digest}")
        async with self._open("GET", parsed, url, what=what) as response:
            if response.status_code != 200:
                raise await self._status_error(response, what)
            data = await self._read_capped(response, descriptor.size, what)
        if len(data) != descriptor.size:
            raise RegistryError(
                f"{what}: got {len(data)} bytes, the descriptor says {descriptor.size}"
            )
        if not digest_matches(data, descriptor.digest):
            raise RegistryError(f"{what}: the content does not match its digest")
        return data

    async def _image_manifest(self, parsed: PluginReference) -> tuple[Manifest, Manifest]:
        """(top-level manifest, image manifest): an index resolves to this platform."""
        top = await self.get_manifest(parsed)
        if not top.is_index:
            return top, top
        triple = current_target_triple()
        platform = triple_to_platform(triple) if triple else None
        for entry in top.manifests():
            p = entry.platform or {}
            if (
                platform is not None
                and p.get("os") == platform.os
                and p.get("architecture") == platform.architecture
                and entry.media_type not in (OCI_INDEX,)
            ):
                child = await self.get_manifest(parsed.with_digest(entry.digest))
                if child.is_index:
                    break
                return top, child
        raise RegistryError(
            f"{parsed} is an image index with no manifest for this "
            f"platform ({platform or 'unknown'})"
        )

    async def fetch_metadata(self, ref: str | PluginReference) -> PluginArtifactMetadata:
        """The plugin's metadata layer (the binary is not downloaded)."""
        parsed = self.parse(ref)
        _, manifest = await self._image_manifest(parsed)
        for layer in manifest.layers():
            if layer.media_type == PLUGIN_METADATA:
                raw = await self.fetch_blob(parsed, layer)
                return PluginArtifactMetadata.from_json_bytes(raw, str(parsed))
        raise RegistryError(f"{parsed}: the artifact has no {PLUGIN_METADATA} layer")

    async def search_plugins(self, query: str = "") -> list[PluginSearchResult]:
        """Plugins in the directory whose kind contains ``query``.

        ``""`` and ``*`` match everything; ``type/kind`` must match exactly.  A
        plugin whose tags cannot be listed is kept in the result with ``error``
        set (and a warning logged).  Versions are in ascending semver order.
        """
        host, namespace = split_default_registry(self.config.default_registry)
        repo = f"{namespace}/{DIRECTORY_REPOSITORY}" if namespace else DIRECTORY_REPOSITORY
        directory = PluginReference(registry=host, repository=repo)
        results: list[PluginSearchResult] = []
        for tag in await self.list_tags(directory):
            plugin_type, dot, kind = tag.partition(".")
            if not dot or not plugin_type or not kind:
                continue
            if query not in ("", "*"):
                if "/" in query:
                    if query != f"{plugin_type}/{kind}":
                        continue
                elif query not in kind:
                    continue
            short = f"{plugin_type}/{kind}"
            plugin_repo = f"{namespace}/{short}" if namespace else short
            full = f"{host}/{plugin_repo}"
            try:
                plugin_tags = await self.list_tags(PluginReference(host, plugin_repo))
            except RegistryError as exc:
                log.warning("cannot list the versions of %s: %s", full, exc)
                results.append(PluginSearchResult(plugin_type, kind, short, full, error=str(exc)))
                continue
            grouped: dict[str, list[str]] = {}
            for plugin_tag in plugin_tags:
                split = strip_arch_suffix(plugin_tag)
                if split is not None:
                    grouped.setdefault(split[0], []).append(split[1])
            versions = tuple(
                PluginVersion(v, tuple(sorted(grouped[v])))
                for v in sorted(grouped, key=version_sort_key)
            )
            results.append(PluginSearchResult(plugin_type, kind, short, full, versions))
        return results

    # -- downloading -------------------------------------------------------------

    async def download_plugin(
        self,
        ref: str | PluginReference,
        dest_dir: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Verify (when a verifier is enabled), then download the plugin binary.

        The file is named after the ``io.drasi.plugin.type``/``kind`` annotations
        (``libdrasi_<type>_<kind>.so`` ...), which must match
        ``[a-z0-9][a-z0-9_-]*``.  Raises ``SignatureVerificationError`` (nothing
        written) unless the signature is ``VERIFIED``, and ``RegistryError`` on any
        other failure, leaving no file behind.
        """
        parsed = self.parse(ref)
        top, manifest = await self._image_manifest(parsed)
        pinned = parsed.with_digest(top.digest)
        verification: VerificationResult | None = None
        if self.verifier is not None:
            from drasi_host.registry.cosign import SignatureStatus

            verification = await self.verifier.verify_plugin(pinned, top.digest)
            if self.verifier.config.enabled and verification.status != SignatureStatus.VERIFIED:
                reason = f": {verification.reason}" if verification.reason else ""
                raise SignatureVerificationError(
                    f"{parsed}: signature verification failed "
                    f"({verification.status.value}){reason}",
                    verification,
                )
        annotations = manifest.annotations
        plugin_type, kind = annotations.get(ANN_TYPE, ""), annotations.get(ANN_KIND, "")
        for name, value in ((ANN_TYPE, plugin_type), (ANN_KIND, kind)):
            if not SAFE_NAME_RE.fullmatch(value):
                raise RegistryError(
                    f"{parsed}: annotation {name}={value!r} is not a valid "
                    f"plugin name ([a-z0-9][a-z0-9_-]*)"
                )
        layers = manifest.layers()
        if not layers:
            raise RegistryError(f"{parsed}: the artifact has no layers")
        for layer in layers:
            if layer.media_type not in PLUGIN_LAYER_TYPES:
                raise RegistryError(f"{parsed}: unexpected layer media type {layer.media_type!r}")
        binary = next((layer for layer in layers if layer.media_type == PLUGIN_BINARY), None)
        if binary is None:
            raise RegistryError(f"{parsed}: the artifact has no {PLUGIN_BINARY} layer")
        if binary.size > self.config.max_plugin_size:
            raise RegistryError(
                f"{parsed}: the plugin binary ({binary.size} bytes) exceeds "
                f"the {self.config.max_plugin_size}-byte limit"
            )
        dest = Path(dest_dir)
        filename = library_filename(plugin_type, kind)
        target = dest / filename
        if target.parent != dest or Path(filename).name != filename:
            raise RegistryError(f"{parsed}: unsafe file name {filename!r}")
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"{parsed}: cannot create {dest}: {exc}") from exc
        await self._stream_to_file(parsed, binary, target, progress)
        return DownloadResult(
            path=target, digest=top.digest, verification=verification, size=binary.size
        )

    async def _stream_to_file(
        self,
        parsed: PluginReference,
        blob: Descriptor,
        target: Path,
        progress: ProgressCallback | None,
    ) -> None:
        what = f"download {blob.digest} of {parsed}"
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                hasher = new_hasher(blob.digest)
                done = 0
                if progress is not None:
                    progress(0, blob.size)
                url = self._url(parsed, f"blobs/{blob.digest}")
                async with self._open("GET", parsed, url, what=what) as response:
                    if response.status_code != 200:
                        raise await self._status_error(response, what)
                    try:
                        async for chunk in response.aiter_bytes(_CHUNK):
                            done += len(chunk)
                            if done > blob.size:
                                raise RegistryError(
                                    f"{what}: more data than the "
                                    f"{blob.size} bytes the descriptor says"
                                )
                            hasher.update(chunk)
                            fh.write(chunk)
                            if progress is not None:
                                progress(done, blob.size)
                    except httpx.HTTPError as exc:
                        raise RegistryError(
                            f"{what}: interrupted after {done} bytes: {_describe(exc)}"
                        ) from exc
                if done != blob.size:
                    raise RegistryError(
                        f"{what}: got {done} bytes, the descriptor says {blob.size}"
                    )
                if hasher.hexdigest() != blob.digest.partition(":")[2]:
                    raise RegistryError(
                        f"{what}: the content does not match its digest "
                        f"(tampered or corrupted layer)"
                    )
                fh.flush()
                await anyio.to_thread.run_sync(os.fsync, fh.fileno())
            os.chmod(tmp, 0o755)
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise RegistryError(f"{what}: cannot write {target}: {exc}") from exc
            with contextlib.suppress(OSError):
                dir_fd = os.open(target.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    # -- publishing --------------------------------------------------------------

    async def push_blob(self, ref: str | PluginReference, data: bytes) -> Descriptor:
        """Upload ``data`` to the repository of ``ref`` (POST, then PUT with the
        digest); a blob already there is not sent again.  Returns its descriptor
        (media type ``application/octet-stream``; callers set their own)."""
        parsed = self.parse(ref)
        digest = sha256_digest(data)
        descriptor = Descriptor(
            media_type="application/octet-stream", digest=digest, size=len(data)
        )
        what = f"push blob {digest} to {parsed.registry}/{parsed.repository}"
        rw = "pull,push"
        async with self._open(
            "HEAD", parsed, self._url(parsed, f"blobs/{digest}"), what=what, actions=rw
        ) as response:
            if response.status_code == 200:
                return descriptor
        async with self._open(
            "POST", parsed, self._url(parsed, "blobs/uploads/"), what=what, actions=rw
        ) as response:
            if response.status_code != 202:
                raise await self._status_error(response, what)
            location = response.headers.get("location")
            base = response.url
        if not location:
            raise RegistryError(f"{what}: the upload session has no Location")
        upload = base.join(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        async with self._open(
            "PUT", parsed, upload, what=what, actions=rw, headers=headers, content=data
        ) as response:
            if response.status_code not in (201, 204):
                raise await self._status_error(response, what)
        return descriptor

    async def push_manifest(
        self, ref: str | PluginReference, manifest: bytes, media_type: str
    ) -> str:
        """Store ``manifest`` under the tag (or digest) of ``ref``; returns its digest."""
        parsed = self.parse(ref)
        digest = sha256_digest(manifest)
        what = f"push manifest {parsed}"
        url = self._url(parsed, f"manifests/{parsed.tag or parsed.digest or digest}")
        async with self._open(
            "PUT",
            parsed,
            url,
            what=what,
            actions="pull,push",
            headers={"Content-Type": media_type},
            content=manifest,
        ) as response:
            if response.status_code not in (200, 201, 204):
                raise await self._status_error(response, what)
            returned = response.headers.get("docker-content-digest")
        if returned and returned != digest:
            raise RegistryError(f"{what}: the registry stored digest {returned}, expected {digest}")
        return digest


__all__ = [
    "DownloadResult",
    "OciRegistryClient",
    "PluginSearchResult",
    "PluginVersion",
    "ProgressCallback",
    "RegistryAuth",
    "RegistryConfig",
]
