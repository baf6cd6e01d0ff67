"""Discovering, validating and initialising plugin libraries.

Load sequence for one file (ABI.md section 3): open the library; read and
validate its metadata (SDK major.minor and exact target triple) *before*
``drasi_plugin_init`` runs, and choose the ABI generation from it (``0.4`` or
``0.13``, :data:`SUPPORTED_SDK_VERSIONS`; a library without metadata is a C
plugin of the 0.4 header); read a 0.4 plugin's payload format; call init;
wire the plugin's global log and lifecycle callbacks to the
:class:`CallbackContext`; copy the factory vtables out of the registration
(five arrays for 0.13, which then gets the host's log level), free the
plugin's arrays and block, and wrap each factory in the proxy class of its
kind.  Libraries are never unloaded.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import platform
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import _abi, _abi013
from ._abi import NULL, ffi, lib
from ._native import NativeResource, drop_vtable, run_on_drop_thread
from .bridges.config_resolver import register_config_resolver
from .errors import (
    DrasiHostError,
    IncompatiblePluginError,
    PluginIntegrityError,
    PluginLoadError,
    PluginProtocolError,
)
from .lockfile import PluginLockfile
from .logs import CallbackContext, _Route
from .models import LogLevel
from .payloads import PayloadCodec, codec_for
from .proxies.descriptors import (
    BootstrapPluginProxy,
    IdentityProviderPluginProxy,
    ReactionPluginProxy,
    SecretStorePluginProxy,
    SourcePluginProxy,
    _Factory,
)

__all__ = [
    "HOST_SDK_VERSION",
    "SUPPORTED_SDK_VERSIONS",
    "LoadedPlugin",
    "PluginLoader",
    "PluginLoaderConfig",
    "PluginMetadata",
    "host_target_triple",
]

#: The Drasi plugin SDK / ABI version of the 0.4 generation (kept in this form
#: for compatibility; see :data:`SUPPORTED_SDK_VERSIONS`).
HOST_SDK_VERSION = "0.4.2"

#: The ABI generations this host loads: a plugin's metadata ``sdk_version``
#: must have one of these as its major.minor.
SUPPORTED_SDK_VERSIONS = ("0.4", "0.13")

#: The logger whose effective level a 0.13 plugin gets as its log filter.
PLUGIN_LOGGER = "drasi.plugin"

_log = logging.getLogger("drasi_host.loader")

LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")

# Opened libraries, by resolved path: never closed, opened once.
_libraries: dict[str, Any] = {}
_libraries_lock = threading.Lock()


def host_target_triple() -> str:
    """The Rust-style target triple of this process (e.g. ``x86_64-unknown-linux-gnu``)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        libc, _ = platform.libc_ver()
        return f"{arch}-unknown-linux-{'gnu' if libc == 'glibc' or not libc else 'musl'}"
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    return f"{arch}-unknown-{sys.platform}"


def _major_minor(version: str) -> tuple[str, str] | None:
    parts = version.strip().split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return parts[0], parts[1]


@attrs.frozen
class PluginMetadata:
    """What ``drasi_plugin_metadata`` reports."""

    sdk_version: str
    core_version: str
    lib_version: str
    plugin_version: str
    target_triple: str
    git_commit: str
    build_timestamp: str


def _patterns(value: Iterable[str]) -> tuple[str, ...]:
    """File patterns as a tuple; a single string is one pattern."""
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class PluginLoaderConfig:
    """Where to look for plugins and which file names count (``*`` globs matched
    against the file name with its platform suffix removed).  With
    ``lockfile`` set, every file is hashed and checked against it before it
    is opened (see :class:`~drasi_host.lockfile.PluginLockfile`)."""

    plugin_dir: Path = attrs.field(converter=Path)
    file_patterns: Sequence[str] = attrs.field(default=("libdrasi_*",), converter=_patterns)
    lockfile: Path | None = attrs.field(
        default=None, converter=attrs.converters.optional(Path), kw_only=True
    )


class LoadedPlugin(NativeResource):
    """One initialised plugin library and its factories.

    The factories belong to it: ``close()`` / ``with`` (synchronous) and
    ``aclose()`` / ``async with`` close them, wait until their ``drop_fn``s
    have run (each once, on the drop thread, after any call in flight), then
    forget the plugin's global callback context.  A plugin collected while
    open is released the same way and warns (ResourceWarning).  Instances
    created from the factories are not closed by it.  The library itself
    stays loaded for the life of the process.
    """

    def __init__(
        self,
        path: Path,
        metadata: PluginMetadata | None,
        payload_format: str | None,
        factories: list[_Factory],
        route: _Route,
        abi_version: str = "0.4",
        *,
        set_log_level: Any = None,
        log_filter: int | None = None,
    ) -> None:
        super().__init__(f"plugin {path.name}")
        self._life.own(route.close)  # after every factory is released
        # The 0.13 registration's set_log_level (None for 0.4 plugins).
        self._set_log_level = set_log_level
        #: The ``FfiLogLevelFilter`` last pushed to a 0.13 plugin (None for 0.4).
        self.log_filter = log_filter
        for factory in factories:
            self._life.adopt(factory._life)
        self.path = path
        self.metadata = metadata
        #: The ABI generation the library speaks: ``"0.4"`` or ``"0.13"``.
        self.abi_version = abi_version
        #: The 0.4 payload format the plugin exports (None when it exports
        #: none, and for 0.13 plugins, whose payloads are always MessagePack).
        self.payload_format = payload_format
        self.source_plugins: list[SourcePluginProxy] = [
            f for f in factories if isinstance(f, SourcePluginProxy)
        ]
        self.reaction_plugins: list[ReactionPluginProxy] = [
            f for f in factories if isinstance(f, ReactionPluginProxy)
        ]
        self.bootstrap_plugins: list[BootstrapPluginProxy] = [
            f for f in factories if isinstance(f, BootstrapPluginProxy)
        ]
        #: Identity-provider factories (0.13 plugins only; empty for 0.4).
        self.identity_provider_plugins: list[IdentityProviderPluginProxy] = [
            f for f in factories if isinstance(f, IdentityProviderPluginProxy)
        ]
        #: Secret-store factories (0.13 plugins only; empty for 0.4).
        self.secret_store_plugins: list[SecretStorePluginProxy] = [
            f for f in factories if isinstance(f, SecretStorePluginProxy)
        ]

    @property
    def name(self) -> str:
        return self.path.name

    def set_log_level(self, level: LogLevel | int) -> None:
        """Set the level below which the plugin drops its log records itself.

        ``level`` is a :class:`~drasi_host.models.LogLevel` (records of that
        level and more severe pass) or a :mod:`logging` level number (records
        that level would let through pass; anything below ``DEBUG`` means
        Trace, anything above ``ERROR`` means Error).  Anything else raises
        TypeError; a closed plugin raises :class:`ClosedError`.

        For a 0.13 plugin the filter is per library (ABI-0.13.md section 4):
        it applies to every component of the library, also those loaded
        through another :class:`LoadedPlugin` of the same file, and the last
        call wins.  A 0.4 plugin has no such filter: the call checks
        ``level`` and does nothing else (its records are filtered by the
        :mod:`logging` configuration of ``drasi.plugin``, as always).
        """
        value = _abi013.level_filter(level)
        with self._life.entered():
            if self._set_log_level is None:
                return
            self._set_log_level(value)
            self.log_filter = value

    def close(self) -> None:
        """Release every factory (``drop_fn``) and wait for it; idempotent.
        Blocks the calling thread: in async code prefer :meth:`aclose`."""
        self.close_and_wait()

    def __enter__(self) -> LoadedPlugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<LoadedPlugin {self.path.name} abi={self.abi_version} "
            f"sources={len(self.source_plugins)} "
            f"reactions={len(self.reaction_plugins)} bootstrap={len(self.bootstrap_plugins)}>"
        )


def _release_all(factories: list[_Factory], vtables: list[Any], route: _Route) -> None:
    """Error path of loading: release the factories built so far and the
    vtables no factory owns yet, newest first (drop_fn on the drop thread),
    then the callback route."""
    for factory in reversed(factories):
        factory.close_and_wait()

    def drop_rest() -> None:
        for vtable in reversed(vtables):
            drop_vtable(vtable)

    run_on_drop_thread(drop_rest)
    route.close()


class PluginLoader:
    """Finds plugin libraries in a directory and loads them."""

    def __init__(self, config: PluginLoaderConfig) -> None:
        self.config = config

    def discover(self) -> list[Path]:
        """Library files in ``plugin_dir`` whose names match the patterns, sorted."""
        directory = self.config.plugin_dir
        if not directory.is_dir():
            _log.warning("plugin directory %s does not exist; no plugins loaded", directory)
            return []
        found = []
        for entry in sorted(directory.iterdir()):
            if entry.suffix not in LIBRARY_SUFFIXES or not entry.is_file():
                continue
            stem = entry.name[: -len(entry.suffix)]
            if any(fnmatch.fnmatchcase(stem, p) for p in self.config.file_patterns):
                found.append(entry)
        return found

    def load_all(self, callbacks: CallbackContext) -> list[LoadedPlugin]:
        """Load every discovered plugin; a file that fails is logged and skipped."""
        loaded = []
        for path in self.discover():
            try:
                loaded.append(self.load_plugin(path, callbacks))
            except DrasiHostError as exc:
                _log.error("skipping plugin %s: %s", path, exc)
        return loaded

    def load_plugin(self, path: Path | str, callbacks: CallbackContext) -> LoadedPlugin:
        """Load one library; raises :class:`PluginLoadError` (or a subclass:
        :class:`PluginIntegrityError` when the lockfile refuses the file, which
        is then never ``dlopen``ed), :class:`PluginProtocolError` or
        :class:`PayloadFormatError`.  With a lockfile the file is opened once,
        and that open file is both hashed and loaded (see :func:`_open_locked`)."""
        path = Path(path)
        if self.config.lockfile is None:
            return load_plugin(path, callbacks)
        # Re-read on every load: a lockfile changed since the last load counts.
        lock = PluginLockfile.load(self.config.lockfile)
        return _load(path, _open_locked(path, lock), callbacks)


def _dlopen(name: str, path: Path) -> Any:
    err = ffi.new("char[]", 1024)
    handle = lib.dh_dlopen(name.encode(), err, 1024)
    if handle == NULL:
        raise PluginLoadError(
            f"cannot open library: {ffi.string(err).decode(errors='replace')}", path
        )
    return handle


def _open(path: Path) -> Any:
    key = str(path.resolve())
    with _libraries_lock:
        handle = _libraries.get(key)
        if handle is None:
            handle = _libraries[key] = _dlopen(key, path)
        return handle


#: Where this system names an open file by its descriptor (Linux).
_FD_DIR = Path("/proc/self/fd")


def _open_locked(path: Path, lock: PluginLockfile) -> Any:
    """Open the library at ``path`` the way ``lock`` allows: open the file
    once, hash that open file, check the hash, then ``dlopen`` the same open
    file as ``/proc/self/fd/N``, so what was hashed is what is loaded even if
    ``path`` is replaced in between.  The descriptor of a loaded library
    stays open for the life of the process, like the library (so no later
    ``/proc/self/fd/N`` can name another file to the dynamic loader).

    Where ``/proc/self/fd`` does not exist (macOS, the BSDs without procfs)
    there is no way to ``dlopen`` a descriptor: the library is opened by
    path after the check, and refused if ``path`` no longer names the file
    that was hashed; a file changed in place within that window is not seen.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        lock.verify(path)  # not listed or missing: refused as such
        raise PluginLoadError(f"cannot open: {exc}", path) from exc
    keep = False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PluginLoadError("not a regular file", path)
        lock.verify(path, fd=fd)
        entry = lock.get(path.name)
        assert entry is not None  # verified above
        key = f"{path.resolve()}\0sha256:{entry.file_sha256}"
        with _libraries_lock:
            handle = _libraries.get(key)
            if handle is not None:
                return handle
            if _FD_DIR.is_dir():
                handle = _dlopen(str(_FD_DIR / str(fd)), path)
                keep = True
            else:
                handle = _dlopen(str(path.resolve()), path)
                now = os.stat(path)
                if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                    raise PluginIntegrityError("replaced while it was being opened", path)
            _libraries[key] = handle
            return handle
    finally:
        if not keep:
            os.close(fd)


def _symbol(handle: Any, name: str, ctype: str) -> Any:
    ptr = lib.dh_dlsym(handle, name.encode())
    return None if ptr == NULL else ffi.cast(ctype, ptr)


def read_metadata(path: Path) -> PluginMetadata | None:
    """The metadata a library reports, or None when it exports none."""
    return _read_metadata(path, _open(path))


def _read_metadata(path: Path, handle: Any) -> PluginMetadata | None:
    fn = _symbol(handle, "drasi_plugin_metadata", "DrasiPluginMetadataFn")
    if fn is None:
        return None
    ptr = fn()
    if ptr == NULL:
        return None
    fields = [f.name for f in attrs.fields(PluginMetadata)]
    try:
        return PluginMetadata(*(_abi.read_str(getattr(ptr, f), f"metadata {f}") for f in fields))
    except PluginProtocolError as exc:
        raise PluginLoadError(f"invalid metadata: {exc}", path) from exc


def _check_compatible(path: Path, metadata: PluginMetadata) -> str:
    """The ABI generation of a plugin (one of :data:`SUPPORTED_SDK_VERSIONS`),
    or :class:`IncompatiblePluginError` naming the reported and the supported
    versions, or the plugin's and the host's target triples."""
    theirs = _major_minor(metadata.sdk_version)
    abi = ".".join(theirs) if theirs is not None else None
    if abi not in SUPPORTED_SDK_VERSIONS:
        supported = ", ".join(SUPPORTED_SDK_VERSIONS)
        raise IncompatiblePluginError(
            f"built for SDK {metadata.sdk_version!r}, this host speaks {supported} "
            f"(host SDK {HOST_SDK_VERSION}; major.minor must match one of them)",
            path,
        )
    host = host_target_triple()
    if metadata.target_triple != host:
        raise IncompatiblePluginError(
            f"built for target {metadata.target_triple!r}, this host is {host!r}", path
        )
    assert abi is not None
    return abi


def _payload_format(path: Path, handle: Any) -> tuple[str | None, PayloadCodec | None]:
    fn = _symbol(handle, "drasi_plugin_payload_format", "DrasiPluginPayloadFormatFn")
    if fn is None:
        return None, None
    try:
        media_type = _abi.read_str(fn(), "payload format")
        return media_type, codec_for(media_type)
    except DrasiHostError as exc:
        raise exc.with_context(str(path), plugin=path) from exc


# (registration array field, vtable C type, proxy class); each count field is
# the array field's singular with "_count" (source_plugins -> source_plugin_count).
_FACTORY_ARRAYS: tuple[tuple[str, str, type[_Factory]], ...] = (
    ("source_plugins", "SourcePluginVtable", SourcePluginProxy),
    ("reaction_plugins", "ReactionPluginVtable", ReactionPluginProxy),
    ("bootstrap_plugins", "BootstrapPluginVtable", BootstrapPluginProxy),
)

# The 0.13 registration: the three arrays of 0.4 plus two new kinds.
_FACTORY_ARRAYS_013: tuple[tuple[str, str, type[_Factory]], ...] = (
    *_FACTORY_ARRAYS,
    (
        "identity_provider_plugins",
        "IdentityProviderPluginVtable",
        IdentityProviderPluginProxy,
    ),
    ("secret_store_plugins", "SecretStorePluginVtable", SecretStorePluginProxy),
)


#: Most factories of one kind a library may register.  A count beyond it
#: (say ``SIZE_MAX`` or 2**40) cannot be true and is refused unread.
MAX_FACTORIES = 1024


def _copy_factory_arrays(
    reg: Any,
    arrays: tuple[tuple[str, str, type[_Factory]], ...] = _FACTORY_ARRAYS,
    decl: Any = ffi,
) -> tuple[list[str], list[tuple[type[_Factory], Any]]]:
    """Copy every factory vtable out of the registration's arrays and free
    them, even when one array is broken, so each good factory can still be
    dropped once.  Returns the problems found and the copied vtables.

    ``reg`` is the host's copy of the registration, so each count is read
    once.  A count above :data:`MAX_FACTORIES`, or a NULL array with a count,
    is a broken array: none of its elements is read and it is not freed (its
    true size is unknown; leaking it is the safe failure).  ``arrays`` and
    ``decl`` (the cffi declarations) are those of the plugin's generation.
    """
    broken: list[str] = []
    vtables: list[tuple[type[_Factory], Any]] = []
    for field, ctype, cls in arrays:
        array, count = getattr(reg, field), int(getattr(reg, f"{field[:-1]}_count"))
        if count > MAX_FACTORIES:
            broken.append(f"{field} count {count} exceeds {MAX_FACTORIES} (not read)")
        elif count and array == NULL:
            broken.append(f"{field} is NULL with count {count}")
        elif count:
            vtables.extend((cls, decl.new(f"{ctype} *", array[i])) for i in range(count))
            lib.free(array)
    return broken, vtables


def load_plugin(path: Path, callbacks: CallbackContext) -> LoadedPlugin:
    """Load the library at ``path`` (no lockfile check); raises as
    :meth:`PluginLoader.load_plugin`."""
    if not path.is_file():
        raise PluginLoadError("no such file", path)
    return _load(path, _open(path), callbacks)


def _load(path: Path, handle: Any, callbacks: CallbackContext) -> LoadedPlugin:
    """Validate, initialise and wrap the opened library ``handle`` of ``path``."""
    metadata = _read_metadata(path, handle)
    if metadata is None:
        _log.warning(
            "%s exports no plugin metadata; loading it as a 0.4 plugin without a version check",
            path,
        )
    elif _check_compatible(path, metadata) == "0.13":
        return _load_013(path, handle, metadata, callbacks)
    media_type, codec = _payload_format(path, handle)

    init = _symbol(handle, "drasi_plugin_init", "DrasiPluginInitFn")
    if init is None:
        raise PluginLoadError("missing required symbol drasi_plugin_init", path)
    registration = init()
    if registration == NULL:
        raise PluginLoadError(
            "drasi_plugin_init returned NULL (the plugin failed to initialise)", path
        )

    route = _Route(callbacks, plugin_id=path.stem)
    reg = ffi.new("FfiPluginRegistration *", registration[0])
    lib.free(registration)
    if reg.set_log_callback != NULL:
        reg.set_log_callback(_abi.key_ctx(route.key), lib.dh_log_callback_ptr())
    if reg.set_lifecycle_callback != NULL:
        reg.set_lifecycle_callback(_abi.key_ctx(route.key), lib.dh_lifecycle_callback_ptr())

    broken, vtables = _copy_factory_arrays(reg)
    if broken:
        _release_all([], [vt for _, vt in vtables], route)
        raise PluginProtocolError(f"{path}: {'; '.join(broken)}", plugin=path)

    def make(cls: type[_Factory], vtable: Any) -> _Factory:
        return cls(vtable, path.name, codec, media_type, callbacks, route)

    factories = _wrap_factories(path, vtables, make, route)
    return LoadedPlugin(path, metadata, media_type, factories, route)


def plugin_log_filter() -> int:
    """The ``FfiLogLevelFilter`` a 0.13 plugin gets: the effective level of
    the :data:`PLUGIN_LOGGER` logger."""
    return _abi013.log_filter(logging.getLogger(PLUGIN_LOGGER).getEffectiveLevel())


def _wrap_factories(
    path: Path,
    vtables: list[tuple[type[_Factory], Any]],
    make: Callable[[type[_Factory], Any], _Factory],
    route: _Route,
) -> list[_Factory]:
    """One proxy per copied vtable, described; on an error every factory and
    vtable is released and the error raised with the library's context."""
    factories: list[_Factory] = []
    for i, (cls, vtable) in enumerate(vtables):
        factory = make(cls, vtable)
        try:
            factory._describe()
        except DrasiHostError as exc:
            _release_all([*factories, factory], [vt for _, vt in vtables[i + 1 :]], route)
            raise exc.with_context(str(path), plugin=path) from exc
        factories.append(factory)
    return factories


def _load_013(
    path: Path, handle: Any, metadata: PluginMetadata, callbacks: CallbackContext
) -> LoadedPlugin:
    """The 0.13 load sequence (ABI-0.13.md section 1): init; log and
    lifecycle callbacks; take the five factory arrays; the log level; free
    the 112-byte registration block; the config resolver (a route to
    ``callbacks``, released with the plugin); wrap the factories."""
    ffi13 = _abi013.ffi
    ptr = lib.dh_dlsym(handle, b"drasi_plugin_init")
    if ptr == NULL:
        raise PluginLoadError("missing required symbol drasi_plugin_init", path)
    registration = _abi013.cast_fn("DrasiPluginInitFn", ptr)()
    if registration == NULL:
        raise PluginLoadError(
            "drasi_plugin_init returned NULL (the plugin failed to initialise)", path
        )
    route = _Route(callbacks, plugin_id=path.stem)
    reg = ffi13.new("FfiPluginRegistration *", registration[0])
    if reg.set_log_callback != NULL:
        reg.set_log_callback(
            _abi.key_ctx(route.key), _abi013.cast_fn("LogCallbackFn", lib.dh_log_callback_ptr())
        )
    if reg.set_lifecycle_callback != NULL:
        reg.set_lifecycle_callback(
            _abi.key_ctx(route.key),
            _abi013.cast_fn("LifecycleCallbackFn", lib.dh_lifecycle_callback_ptr()),
        )
    broken, vtables = _copy_factory_arrays(reg, _FACTORY_ARRAYS_013, ffi13)
    set_log_level = reg.set_log_level if reg.set_log_level != NULL else None
    log_filter = None
    if set_log_level is not None:
        log_filter = plugin_log_filter()
        set_log_level(log_filter)
    lib.free(registration)
    if broken:
        _release_all([], [vt for _, vt in vtables], route)
        raise PluginProtocolError(f"{path}: {'; '.join(broken)}", plugin=path)
    # The last resolver set applies to the whole library: every load sets its
    # own (answering "no resolver" when its context has none).
    resolver = None
    if reg.set_config_resolver != NULL:
        resolver = register_config_resolver(reg.set_config_resolver, callbacks, path.name)

    def make(cls: type[_Factory], vtable: Any) -> _Factory:
        return cls(vtable, path.name, None, None, callbacks, route, abi_version="0.13")

    try:
        factories = _wrap_factories(path, vtables, make, route)
    except BaseException:
        if resolver is not None:
            resolver.close()
        raise
    plugin = LoadedPlugin(
        path,
        metadata,
        None,
        factories,
        route,
        abi_version="0.13",
        set_log_level=set_log_level,
        log_filter=log_filter,
    )
    if resolver is not None:
        plugin._life.own(resolver.close)
    return plugin
