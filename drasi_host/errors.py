"""The exception hierarchy.  Every error the package raises derives from
:class:`DrasiHostError`; each message names the plugin (file or component) and
what was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DrasiHostError(Exception):
    """Base class of every error raised by drasi_host."""


class PluginLoadError(DrasiHostError):
    """A plugin library could not be loaded: open failed, a required symbol is
    missing, or ``drasi_plugin_init`` returned NULL."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = Path(path) if path is not None else None
        self.reason = message


class IncompatiblePluginError(PluginLoadError):
    """The plugin was built for another SDK version or target triple."""


class PluginCallError(DrasiHostError):
    """A plugin call reported failure.  ``plugin_message`` is what the plugin
    said (its error message, or what it logged), if anything."""

    def __init__(
        self,
        message: str,
        *,
        plugin_message: str | None = None,
        error_code: int | None = None,
        component: str | None = None,
    ) -> None:
        text = message
        if plugin_message:
            text = f"{message}: {plugin_message}"
        super().__init__(text)
        self.plugin_message = plugin_message
        self.error_code = error_code
        self.component = component


class PluginProtocolError(DrasiHostError):
    """The plugin broke the ABI: a bad enum value, NULL where none is allowed,
    invalid UTF-8, an oversized buffer, invalid JSON where JSON is required."""


class PayloadFormatError(DrasiHostError):
    """A payload format is unknown, unsupported here, or not available for
    this plugin (opaque-payload plugins)."""


class RegistryError(DrasiHostError):
    """An OCI registry operation failed."""


class SignatureVerificationError(RegistryError):
    """A plugin artifact's signature did not verify; ``result`` says why."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


__all__ = [
    "DrasiHostError",
    "IncompatiblePluginError",
    "PayloadFormatError",
    "PluginCallError",
    "PluginLoadError",
    "PluginProtocolError",
    "RegistryError",
    "SignatureVerificationError",
]
