"""The exception hierarchy.

Every error the package raises derives from :class:`DrasiHostError`.  Context
lives in attributes, not only in the message text: ``plugin`` (the plugin
library's file name) and ``component_id`` where they are known, plus what
each subclass adds (``code`` and ``plugin_message`` of a plugin's refusal,
``state`` and ``operation`` of a lifecycle error, ``reference``, ``url`` and
``status_code`` of a registry error).

Re-raising with more context goes through :meth:`DrasiHostError.with_context`,
which keeps every attribute and chains the original as ``__cause__``::

    except DrasiHostError as exc:
        raise exc.with_context(f"{path}", plugin=path.name) from exc

::

    DrasiHostError
    ├── PluginLoadError ── IncompatiblePluginError, PluginIntegrityError
    ├── PluginCallError            .code, .plugin_message
    ├── PluginProtocolError
    ├── PayloadFormatError
    ├── LifecycleError             .state, .operation
    ├── ClosedError                also an anyio.ClosedResourceError
    ├── ConfigurationError         also a ValueError
    └── RegistryError              .reference, .url, .status_code
        ├── RegistryNotFoundError
        ├── RegistryAuthError
        ├── RegistryTransportError
        ├── IntegrityError
        └── SignatureVerificationError .result
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import anyio

_E = TypeVar("_E", bound="DrasiHostError")


def _file_name(plugin: Path | str | None) -> str | None:
    if plugin is None:
        return None
    return Path(plugin).name or str(plugin)


class DrasiHostError(Exception):
    """Base class of every error raised by drasi_host.

    ``plugin`` is the plugin library's file name and ``component_id`` the
    component the error is about, each None where not known.
    """

    plugin: str | None
    component_id: str | None

    def __init__(
        self,
        message: str = "",
        *,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = _file_name(plugin)
        self.component_id = component_id

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle through ``args``; keyword attributes travel in the state.
        return (_rebuild, (type(self), self.message), self.__dict__)

    def with_context(
        self: _E,
        prefix: str | None = None,
        *,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> _E:
        """A copy of this error with ``prefix: `` before its message and the
        given attributes filled in where they were unknown.  Every other
        attribute is kept; raise it ``from`` the original to keep the cause."""
        clone = copy.copy(self)
        if prefix:
            clone.message = f"{prefix}: {self.message}" if self.message else prefix
            clone.args = (clone.message,)
        if clone.plugin is None:
            clone.plugin = _file_name(plugin)
        if clone.component_id is None:
            clone.component_id = component_id
        clone.__traceback__ = None
        return clone


def _rebuild(cls: type[DrasiHostError], message: str) -> DrasiHostError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


class PluginLoadError(DrasiHostError):
    """A plugin library could not be loaded: open failed, a required symbol is
    missing, or ``drasi_plugin_init`` returned NULL.  ``path`` is the library
    (when known) and ``reason`` the message without the path."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        *,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> None:
        super().__init__(
            f"{path}: {message}" if path is not None else message,
            plugin=plugin if plugin is not None else path,
            component_id=component_id,
        )
        self.path = Path(path) if path is not None else None
        self.reason = message


class IncompatiblePluginError(PluginLoadError):
    """The plugin was built for another SDK version or target triple."""


class PluginIntegrityError(PluginLoadError):
    """A plugin file does not match its lockfile entry (changed, not listed,
    or missing); it was not loaded."""


class PluginCallError(DrasiHostError):
    """A plugin call reported failure.  ``code`` is the plugin's error code and
    ``plugin_message`` what the plugin said (its error message, or what it
    logged during the call), each None if nothing."""

    def __init__(
        self,
        message: str,
        *,
        plugin_message: str | None = None,
        code: int | None = None,
        error_code: int | None = None,
        component: str | None = None,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> None:
        text = f"{message}: {plugin_message}" if plugin_message else message
        super().__init__(
            text,
            plugin=plugin,
            component_id=component_id if component_id is not None else component,
        )
        self.plugin_message = plugin_message
        self.code = code if code is not None else error_code

    @property
    def error_code(self) -> int | None:
        """The plugin's error code (the first release's name for ``code``)."""
        return self.code

    @property
    def component(self) -> str | None:
        """The component id (the first release's name for ``component_id``)."""
        return self.component_id


class PluginProtocolError(DrasiHostError):
    """The plugin broke the ABI: a bad enum value, NULL where none is allowed,
    invalid UTF-8, an impossible size, invalid JSON where JSON is required."""


class PayloadFormatError(DrasiHostError):
    """A payload document is malformed, or its format is unknown, unsupported
    here, or not available for this plugin (opaque-payload plugins)."""


class LifecycleError(DrasiHostError):
    """A call made in a state that does not allow it (``start`` before
    ``initialize``, a second ``initialize``, ...).  ``operation`` is the method
    name and ``state`` the component's state then (None if never initialised)."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        state: Any = None,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> None:
        super().__init__(message, plugin=plugin, component_id=component_id)
        self.operation = operation
        self.state = state


class ClosedError(DrasiHostError, anyio.ClosedResourceError):
    """A call on an object that was closed (``aclose()``), or an ``async for``
    step interrupted because another task closed the receiver."""


class ConfigurationError(DrasiHostError, ValueError):
    """A component configuration that is not a mapping or not JSON-serialisable."""


class RegistryError(DrasiHostError):
    """An OCI registry operation failed.  ``reference``, ``url`` and
    ``status_code`` say where, each None where not known."""

    def __init__(
        self,
        message: str,
        *,
        reference: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        plugin: Path | str | None = None,
        component_id: str | None = None,
    ) -> None:
        super().__init__(message, plugin=plugin, component_id=component_id)
        self.reference = reference
        self.url = url
        self.status_code = status_code


class RegistryNotFoundError(RegistryError):
    """The registry has no such repository, tag, manifest or blob (HTTP 404)."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (HTTP 401/403) or the token flow failed."""


class RegistryTransportError(RegistryError):
    """The registry could not be reached: connection, timeout, retries exhausted."""


class IntegrityError(RegistryError):
    """Received bytes do not match their digest or declared size."""


class SignatureVerificationError(RegistryError):
    """A plugin artifact's signature did not verify; ``result`` says why."""

    def __init__(self, message: str, result: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.result = result


__all__ = [
    "ClosedError",
    "ConfigurationError",
    "DrasiHostError",
    "IncompatiblePluginError",
    "IntegrityError",
    "LifecycleError",
    "PayloadFormatError",
    "PluginCallError",
    "PluginIntegrityError",
    "PluginLoadError",
    "PluginProtocolError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryTransportError",
    "SignatureVerificationError",
]
