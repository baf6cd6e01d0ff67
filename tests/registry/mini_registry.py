"""A small in-memory OCI distribution server for the flows the packaged
registry lacks: bearer-token auth, ``Link`` paginated tag lists and the
referrers API.  It also injects faults (5xx answers, truncated blobs).

It is a real HTTP/1.1 server (stdlib ``http.server``) on 127.0.0.1, run in a
thread, speaking the distribution spec's pull and push endpoints:

* ``GET /v2/``; ``GET /token`` (when token auth is on) issues JWT-shaped,
  HMAC-signed tokens with ``exp`` and the granted repository actions;
* ``GET /v2/<name>/tags/list[?n=&last=]`` (sorted; ``page_size`` forces pages,
  each with a relative ``Link: <...>; rel="next"``);
* ``GET|HEAD|PUT /v2/<name>/manifests/<ref>``, ``GET|HEAD /v2/<name>/blobs/<d>``,
  ``POST /v2/<name>/blobs/uploads/`` then ``PUT <location>?digest=``;
* ``GET /v2/<name>/referrers/<digest>`` (when enabled): an image index of the
  manifests whose ``subject`` is that digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"

_ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:(?P<tags>tags/list)|manifests/(?P<ref>[^/]+)"
    r"|blobs/uploads/(?P<upload>[^/]*)|blobs/(?P<digest>[^/]+)|referrers/(?P<subject>[^/]+))$"
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MiniRegistry:
    """The server state and its options; start with :meth:`start`."""

    def __init__(
        self,
        *,
        token_auth: bool = False,
        username: str | None = None,
        password: str | None = None,
        token_ttl: int = 300,
        page_size: int | None = None,
        referrers: bool = True,
        link_loop: bool = False,
    ) -> None:
        self.token_auth = token_auth
        self.username = username
        self.password = password
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.referrers = referrers
        self.link_loop = link_loop
        self.secret = uuid.uuid4().bytes
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, str] = {}
        self.failures: list[list[Any]] = []
        self.truncated: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def fail(self, method: str, path_part: str, count: int, status: int = 503) -> None:
        """Answer the next ``count`` ``method`` requests whose path contains
        ``path_part`` with ``status``."""
        with self.lock:
            self.failures.append([method, path_part, count, status])

    def requests(self, method: str, path_part: str) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.log if m == method and path_part in p)

    def start(self) -> MiniRegistry:
        registry = self

        class Handler(_Handler):
            state = registry

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- tokens ----------------------------------------------------------------

    def issue_token(self, scope: str) -> str:
        access = []
        for item in scope.split(" "):
            parts = item.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                access.append(
                    {"type": "repository", "name": parts[1], "actions": parts[2].split(",")}
                )
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = _b64url(
            json.dumps({"exp": int(time.time()) + self.token_ttl, "access": access}).encode()
        )
        signature = hmac.new(self.secret, f"{header}.{claims}".encode(), hashlib.sha256)
        return f"{header}.{claims}.{_b64url(signature.digest())}"

    def token_allows(self, token: str, name: str, action: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3:
            return False
        expected = hmac.new(self.secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
        if not hmac.compare_digest(_b64url(expected.digest()), parts[2]):
            return False
        claims = json.loads(_b64url_decode(parts[1]))
        if claims["exp"] < time.time():
            return False
        return any(a["name"] == name and action in a["actions"] for a in claims["access"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: MiniRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        # Logged before answering, so a client that has its answer sees the entry.
        with self.state.lock:
            self.state.log.append((self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _injected_failure(self) -> bool:
        with self.state.lock:
            for failure in self.state.failures:
                method, part, count, status = failure
                if count > 0 and method == self.command and part in self.path:
                    failure[2] -= 1
                    break
            else:
                return False
        self._body()
        self._error(status, "UNAVAILABLE", "injected failure")
        return True

    def _authorized(self, name: str, action: str) -> bool:
        if not self.state.token_auth:
            return True
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.state.token_allows(header[7:], name, action):
            return True
        realm = f"http://{self.state.host}/token"
        challenge = (
            f'Bearer realm="{realm}",service="mini-registry",scope="repository:{name}:{action}"'
        )
        self._body()
        self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
        return False

    # -- dispatch --------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if self._injected_failure():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/token":
            self._token(query)
            return
        if url.path == "/v2/":
            if self.state.token_auth:
                realm = f"http://{self.state.host}/token"
                self._error(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    {"WWW-Authenticate": f'Bearer realm="{realm}",service="mini-registry"'},
                )
            else:
                self._send(200, b"{}")
            return
        match = _ROUTE.match(url.path)
        if match is None:
            self._send(404, b"404 page not found", content_type="text/plain")
            return
        name = match["name"]
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        if not self._authorized(name, action):
            return
        if match["tags"]:
            self._tags(name, query)
        elif match["ref"] is not None:
            self._manifest(name, match["ref"])
        elif match["upload"] is not None:
            self._upload(name, match["upload"], query)
        elif match["digest"] is not None:
            self._blob(match["digest"])
        else:
            self._referrers(name, match["subject"])

    def _token(self, query: dict[str, list[str]]) -> None:
        state = self.state
        if state.username is not None:
            expected = base64.b64encode(f"{state.username}:{state.password}".encode()).decode()
            if self.headers.get("Authorization", "") != f"Basic {expected}":
                self._error(401, "UNAUTHORIZED", "bad credentials")
                return
        scope = " ".join(query.get("scope", []))
        with state.lock:
            state.token_requests.append(
                {"scope": scope, "service": ",".join(query.get("service", []))}
            )
        token = state.issue_token(scope)
        self._send(200, json.dumps({"token": token, "expires_in": state.token_ttl}).encode())

    def _tags(self, name: str, query: dict[str, list[str]]) -> None:
        tags = sorted(self.state.tags.get(name, {}))
        if name not in self.state.tags:
            self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return
        size = int(query["n"][0]) if "n" in query else self.state.page_size
        last = query.get("last", [None])[0]
        if last is not None:
            tags = [t for t in tags if t > last]
        headers: dict[str, str] = {}
        if size is not None and len(tags) > size:
            tags = tags[:size]
            if self.state.link_loop:
                headers["Link"] = f'</v2/{name}/tags/list>; rel="next"'
            else:
                next_query = urllib.parse.urlencode({"n": size, "last": tags[-1]})
                headers["Link"] = f'</v2/{name}/tags/list?{next_query}>; rel="next"'
        self._send(200, json.dumps({"name": name, "tags": tags}).encode(), headers)

    def _manifest(self, name: str, ref: str) -> None:
        state = self.state
        if self.command == "PUT":
            body = self._body()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            media_type = self.headers.get("Content-Type", "")
            with state.lock:
                state.manifests[(name, digest)] = (body, media_type)
                state.blobs.setdefault(digest, body)
                if not ref.startswith("sha256:"):
                    state.tags.setdefault(name, {})[ref] = digest
                else:
                    state.tags.setdefault(name, {})
            self._send(
                201,
                b"",
                {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"},
            )
            return
        digest = ref if ref.startswith("sha256:") else state.tags.get(name, {}).get(ref)
        stored = state.manifests.get((name, digest)) if digest else None
        if stored is None:
            self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        body, media_type = stored
        self._send(200, body, {"Docker-Content-Digest": str(digest)}, content_type=media_type)

    def _upload(self, name: str, upload: str, query: dict[str, list[str]]) -> None:
        state = self.state
        if self.command == "POST":
            self._body()
            session = uuid.uuid4().hex
            with state.lock:
                state.uploads[session] = name
            self._send(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{session}?state=x"})
            return
        body = self._body()
        digest = query.get("digest", [""])[0]
        if state.uploads.get(upload) != name:
            self._error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
            return
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            self._error(400, "DIGEST_INVALID", "digest mismatch")
            return
        with state.lock:
            state.blobs[digest] = body
            state.tags.setdefault(name, {})
        self._send(201, b"", {"Docker-Content-Digest": digest})

    def _blob(self, digest: str) -> None:
        data = self.state.blobs.get(digest)
        if data is None:
            self._error(404, "BLOB_UNKNOWN", "blob unknown")
            return
        if digest in self.state.truncated and self.command == "GET":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(
            200, data, {"Docker-Content-Digest": digest}, content_type="application/octet-stream"
        )

    def _referrers(self, name: str, subject: str) -> None:
        if not self.state.referrers:
            self._send(404, b"404 page not found", content_type="text/plain")
            return
        entries = []
        for (repo, digest), (body, media_type) in list(self.state.manifests.items()):
            if repo != name:
                continue
            doc = json.loads(body)
            if (doc.get("subject") or {}).get("digest") != subject:
                continue
            entry = {"mediaType": media_type, "digest": digest, "size": len(body)}
            artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if artifact_type:
                entry["artifactType"] = artifact_type
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self._send(200, json.dumps(index).encode(), content_type=OCI_INDEX)
