"""An async client for OCI (distribution-spec) registries holding Drasi plugins.

This layer knows registries, manifests and blobs, and nothing of signatures
(discovery is :mod:`.signatures`, verification :mod:`.verification`, the
download that ties them together :mod:`.pull`).

Transport is one ``httpx.AsyncClient`` (works under asyncio and trio), built
from the configuration or injected by the caller (then used as given and never
closed here).  Every request goes through two layers:

* ``_send_raw``: one HTTP exchange with bounded retries on connection errors,
  timeouts, 429 and 5xx, for reads only (GET, HEAD; never POST, PUT or
  PATCH, so an upload is never sent twice); the wait grows exponentially
  with full jitter, and ``Retry-After`` (seconds or an HTTP date) is
  honoured up to the backoff cap;
* ``_send``: adds authentication.  The first request to a registry probes
  ``/v2/``: no challenge means anonymous, a ``Basic`` challenge means the
  configured credentials on every request, a ``Bearer`` challenge means a token
  from the challenge's realm (``scope=repository:<repo>:<actions>``, sent with
  the credentials if any), cached per registry/repository/actions until the
  JWT ``exp`` (or ``expires_in``).  A later 401 carrying a new challenge is
  followed once.

Registries are reached over HTTPS, except hosts listed in
``RegistryConfig.insecure_registries`` (plain HTTP).

Failures are typed: 404 :class:`RegistryNotFoundError`, 401/403 and refused
credentials :class:`RegistryAuthError`, connection problems, timeouts and
exhausted retries :class:`RegistryTransportError`, received bytes that do not
match their digest or size :class:`IntegrityError`; anything else
:class:`RegistryError`.  Each carries ``reference``, ``url`` and
``status_code`` where known.

Everything held in memory (manifests, tag pages, metadata and signature blobs)
is capped by ``RegistryConfig.max_manifest_size`` / ``max_blob_size``; plugin
binaries are streamed (:meth:`DistributionClient.stream_blob_to_file`) to a
temporary file in the destination directory while hashed, checked against
their descriptor (size and digest), fsynced, made executable and renamed into
place, so a failed download leaves nothing behind.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import anyio
import attrs
import httpx

from drasi_host.errors import (
    IntegrityError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryTransportError,
)
from drasi_host.registry._semver import version_sort_key
from drasi_host.registry.artifact import (
    DIRECTORY_REPOSITORY,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    PLUGIN_METADATA,
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
    strip_arch_suffix,
    triple_to_platform,
)
from drasi_host.registry.reference import (
    DEFAULT_REGISTRY,
    PluginReference,
    as_reference,
    split_default_registry,
)

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
class StreamedBlob:
    """A blob written to disk: its path, size and the SHA-256 of its bytes."""

    path: Path
    size: int
    sha256: str


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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for: delay-seconds or an HTTP
    date (RFC 9110 section 10.2.3); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


#: Methods retried after a transient failure (reads); POST, PUT and PATCH never are.
RETRIED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def status_error_class(status: int) -> type[RegistryError]:
    """The error class for an HTTP status the caller did not expect."""
    if status == 404:
        return RegistryNotFoundError
    if status in (401, 403):
        return RegistryAuthError
    if status == 429 or status >= 500:
        return RegistryTransportError
    return RegistryError


class DistributionClient:
    """Reads (and, for publishing, writes) plugin artifacts in OCI registries.

    ``http_client``, when given, is used as it is (its timeouts, TLS settings
    and transport) and is not closed by :meth:`aclose`.
    """

    def __init__(
        self, config: RegistryConfig | None = None, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config if config is not None else RegistryConfig()
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout),
                follow_redirects=True,
                verify=self.config.verify_tls,
                headers={"User-Agent": _USER_AGENT},
            )
        )
        self._challenges: dict[str, _Challenge] = {}
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    async def __aenter__(self) -> DistributionClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (unless the HTTP client was injected)."""
        if self._owns_http:
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
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]; a
        ``Retry-After`` wait is the floor (both capped by ``backoff_max``)."""
        ceiling = min(self.config.backoff_base * (2.0**attempt), self.config.backoff_max)
        delay = random.uniform(0.0, ceiling)
        if response is not None:
            asked = retry_after_seconds(response.headers.get("retry-after"))
            if asked is not None:
                delay = max(delay, min(asked, self.config.backoff_max))
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
        """One exchange, retried for :data:`RETRIED_METHODS` only; returns the
        (unread, streaming) response."""
        retries = self.config.max_retries if method.upper() in RETRIED_METHODS else 0
        attempt = 0
        while True:
            request = self._http.build_request(
                method, url, headers=dict(headers or {}), content=content
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise RegistryTransportError(
                        f"{what}: {_describe(exc)} (after {attempt + 1} attempts)",
                        url=str(request.url),
                    ) from exc
                log.debug("%s: %s; retrying", what, _describe(exc))
                await anyio.sleep(self._backoff(attempt, None))
                attempt += 1
                continue
            status = response.status_code
            if (status == 429 or status >= 500) and attempt < retries:
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
            raise status_error_class(response.status_code)(
                f"GET {url}: HTTP {response.status_code} {response.reason_phrase}",
                url=url,
                status_code=response.status_code,
            )
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
                raise RegistryAuthError(
                    f"{registry}: refusing to send credentials to the plain-HTTP token "
                    f"realm {challenge.realm} (list its host in insecure_registries)"
                )
            headers["Authorization"] = basic
        what = f"token request to {challenge.realm} for {scope}"
        response = await self._send_raw("GET", url, what=what, headers=headers)
        try:
            if response.status_code != 200:
                status = response.status_code
                hint = ": check the registry credentials" if status in (401, 403) else ""
                raise status_error_class(status)(
                    f"{what}: HTTP {status} {response.reason_phrase}{hint}",
                    url=str(url),
                    status_code=status,
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
            raise RegistryAuthError(f"{what}: the response holds no token", url=str(url))
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

    async def _read_capped(
        self,
        response: httpx.Response,
        cap: int,
        what: str,
        error: type[RegistryError] = RegistryError,
    ) -> bytes:
        """The body, refused with ``error`` once it exceeds ``cap`` bytes."""
        url = str(response.url)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise error(
                f"{what}: the response ({length} bytes) exceeds the {cap}-byte limit", url=url
            )
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.aiter_bytes(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise error(f"{what}: the response exceeds the {cap}-byte limit", url=url)
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise RegistryTransportError(f"{what}: {_describe(exc)}", url=url) from exc
        return b"".join(chunks)

    async def _status_error(
        self, response: httpx.Response, what: str, ref: PluginReference | None = None
    ) -> RegistryError:
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
        return status_error_class(response.status_code)(
            f"{what}: HTTP {response.status_code} {response.reason_phrase}{detail}{hint}",
            reference=None if ref is None else str(ref),
            url=str(response.url),
            status_code=response.status_code,
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
                    raise await self._status_error(response, what, parsed)
                body = await self._read_capped(response, self.config.max_manifest_size, what)
                link = response.links.get("next", {}).get("url")
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
                raise await self._status_error(response, what, parsed)
            raw = await self._read_capped(response, self.config.max_manifest_size, what)
            header_digest = response.headers.get("docker-content-digest")
            content_type = response.headers.get("content-type", "")
        if header_digest:
            check_digest_syntax(header_digest, f"{what}: Docker-Content-Digest")
            if not digest_matches(raw, header_digest):
                raise IntegrityError(
                    f"{what}: the manifest does not match its Docker-Content-Digest "
                    f"{header_digest}",
                    reference=str(parsed),
                    url=url,
                )
        digest = sha256_digest(raw)
        if parsed.digest:
            check_digest_syntax(parsed.digest, what)
            if not digest_matches(raw, parsed.digest):
                raise IntegrityError(
                    f"{what}: the manifest does not match the requested digest",
                    reference=str(parsed),
                    url=url,
                )
            digest = parsed.digest
        return Manifest.parse(raw, content_type, digest, what)

    async def get_manifest(self, ref: str | PluginReference) -> Manifest:
        """The manifest or index ``ref`` names (digest-checked)."""
        manifest = await self.find_manifest(ref)
        if manifest is None:
            raise RegistryNotFoundError(
                f"get manifest {self.parse(ref)}: not found (HTTP 404)",
                reference=str(self.parse(ref)),
                status_code=404,
            )
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
                raise await self._status_error(response, what, parsed)
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
                raise await self._status_error(response, what, parsed)
            data = await self._read_capped(response, descriptor.size, what, IntegrityError)
        if len(data) != descriptor.size:
            raise IntegrityError(
                f"{what}: got {len(data)} bytes, the descriptor says {descriptor.size}",
                reference=str(parsed),
                url=url,
            )
        if not digest_matches(data, descriptor.digest):
            raise IntegrityError(
                f"{what}: the content does not match its digest", reference=str(parsed), url=url
            )
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

    async def image_manifest(self, ref: str | PluginReference) -> tuple[Manifest, Manifest]:
        """(top-level manifest, image manifest) of ``ref``: an index resolves to
        this process's platform."""
        return await self._image_manifest(self.parse(ref))

    async def stream_blob_to_file(
        self,
        ref: str | PluginReference,
        blob: Descriptor,
        target: Path,
        progress: ProgressCallback | None = None,
    ) -> StreamedBlob:
        """Stream ``blob`` into ``target``: a temporary file next to it, hashed
        as it is written, checked against the descriptor's size and digest,
        fsynced, made executable (0755) and renamed into place.  On any
        failure nothing is left behind (``IntegrityError`` for bytes that do not
        match the descriptor)."""
        parsed = self.parse(ref)
        what = f"download {blob.digest} of {parsed}"
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        tmp = Path(tmp_name)
        url = self._url(parsed, f"blobs/{blob.digest}")

        def integrity(message: str) -> IntegrityError:
            return IntegrityError(f"{what}: {message}", reference=str(parsed), url=url)

        try:
            with os.fdopen(fd, "wb") as fh:
                hasher = new_hasher(blob.digest)
                sha256 = hashlib.sha256()
                done = 0
                if progress is not None:
                    progress(0, blob.size)
                async with self._open("GET", parsed, url, what=what) as response:
                    if response.status_code != 200:
                        raise await self._status_error(response, what, parsed)
                    try:
                        async for chunk in response.aiter_bytes(_CHUNK):
                            done += len(chunk)
                            if done > blob.size:
                                raise integrity(
                                    f"more data than the {blob.size} bytes the descriptor says"
                                )
                            hasher.update(chunk)
                            sha256.update(chunk)
                            fh.write(chunk)
                            if progress is not None:
                                progress(done, blob.size)
                    except httpx.HTTPError as exc:
                        raise RegistryTransportError(
                            f"{what}: interrupted after {done} bytes: {_describe(exc)}",
                            reference=str(parsed),
                            url=url,
                        ) from exc
                if done != blob.size:
                    raise integrity(f"got {done} bytes, the descriptor says {blob.size}")
                if hasher.hexdigest() != blob.digest.partition(":")[2]:
                    raise integrity(
                        "the content does not match its digest (tampered or corrupted layer)"
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
        return StreamedBlob(path=target, size=done, sha256=sha256.hexdigest())

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
                raise await self._status_error(response, what, parsed)
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
                raise await self._status_error(response, what, parsed)
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
                raise await self._status_error(response, what, parsed)
            returned = response.headers.get("docker-content-digest")
        if returned and returned != digest:
            raise RegistryError(f"{what}: the registry stored digest {returned}, expected {digest}")
        return digest


__all__ = [
    "RETRIED_METHODS",
    "DistributionClient",
    "PluginSearchResult",
    "PluginVersion",
    "ProgressCallback",
    "RegistryAuth",
    "RegistryConfig",
    "StreamedBlob",
    "retry_after_seconds",
    "status_error_class",
]
