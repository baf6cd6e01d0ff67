"""drasi_host: the Python host SDK for Drasi plugins.

Load native Drasi plugin libraries (sources, reactions, bootstrap providers
speaking the plugin C ABI), validate and initialise them, and drive them as
async Python objects.  Registry support lives in :mod:`drasi_host.registry`.
"""

import logging as _logging

from .bridges.identity import (
    IdentityProvider,
    IdentityProviderVtableBuilder,
    StaticIdentityProvider,
)
from .bridges.state_store import (
    MemoryStateStore,
    SqliteStateStore,
    StateStoreProvider,
    StateStoreVtableBuilder,
)
from .channels import EventBatch
from .errors import (
    ClosedError,
    ConfigurationError,
    DrasiHostError,
    IncompatiblePluginError,
    IntegrityError,
    LifecycleError,
    PayloadFormatError,
    PluginCallError,
    PluginIntegrityError,
    PluginLoadError,
    PluginProtocolError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryTransportError,
    SignatureVerificationError,
)
from .loader import (
    HOST_SDK_VERSION,
    SUPPORTED_SDK_VERSIONS,
    LoadedPlugin,
    PluginLoader,
    PluginLoaderConfig,
    PluginMetadata,
    host_target_triple,
)
from .lockfile import IntegrityStatus, LockEntry, PluginLockfile
from .logs import CallbackContext, ComponentEventHistory, InstanceCallbackContext, LogRegistry
from .models import (
    BootstrapContext,
    BootstrapEvent,
    BootstrapRequest,
    ChangeOp,
    ComponentEvent,
    ComponentStatus,
    ControlEvent,
    CredentialKind,
    Credentials,
    DispatchMode,
    Element,
    ElementReference,
    LifecycleEventType,
    LogLevel,
    LogMessage,
    QueryResult,
    ReactionRuntimeContext,
    RecoveryPolicy,
    ResultDiff,
    SourceChange,
    SourceEventWrapper,
    SourceRuntimeContext,
    SubscriptionSettings,
)
from .payloads import JSON_FORMAT, MAX_PAYLOAD_SIZE, MSGPACK_FORMAT, SUPPORTED_FORMATS
from .protocols import (
    BootstrapPluginDescriptor,
    BootstrapProvider,
    ConfigResolver,
    Reaction,
    ReactionPluginDescriptor,
    SnapshotFetcher,
    Source,
    SourcePluginDescriptor,
)
from .proxies.bootstrap import BootstrapProviderProxy
from .proxies.descriptors import (
    BootstrapPluginProxy,
    IdentityProviderPluginProxy,
    ReactionPluginProxy,
    SecretStorePluginProxy,
    SourcePluginProxy,
)
from .proxies.reaction import ReactionProxy
from .proxies.receivers import BootstrapReceiverProxy, ChangeReceiverProxy
from .proxies.services import IdentityProviderProxy, SecretStoreProxy
from .proxies.source import SourceProxy, SubscriptionResponse

#: The package version (the one place it is written; the build reads it here).
__version__ = "0.1.0"

# A library leaves output to the application: without its own logging setup,
# nothing of the package's loggers reaches Python's last-resort stderr handler.
_logging.getLogger("drasi_host").addHandler(_logging.NullHandler())


def get_include() -> str:
    """The directory holding ``drasi_plugin.h`` (for building plugins against
    this host's ABI::

        cc -I"$(python -c 'import drasi_host; print(drasi_host.get_include())')" ...
    """
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (here / "include", here.parent / "cdefs"):
        if (candidate / "drasi_plugin.h").is_file():
            return str(candidate)
    raise FileNotFoundError("drasi_plugin.h is not installed with this package")


__all__ = [
    "HOST_SDK_VERSION",
    "JSON_FORMAT",
    "MAX_PAYLOAD_SIZE",
    "MSGPACK_FORMAT",
    "SUPPORTED_FORMATS",
    "SUPPORTED_SDK_VERSIONS",
    "BootstrapContext",
    "BootstrapEvent",
    "BootstrapPluginDescriptor",
    "BootstrapPluginProxy",
    "BootstrapProvider",
    "BootstrapProviderProxy",
    "BootstrapReceiverProxy",
    "BootstrapRequest",
    "CallbackContext",
    "ChangeOp",
    "ChangeReceiverProxy",
    "ClosedError",
    "ComponentEvent",
    "ComponentEventHistory",
    "ComponentStatus",
    "ConfigResolver",
    "ConfigurationError",
    "ControlEvent",
    "CredentialKind",
    "Credentials",
    "DispatchMode",
    "DrasiHostError",
    "Element",
    "ElementReference",
    "EventBatch",
    "IdentityProvider",
    "IdentityProviderPluginProxy",
    "IdentityProviderProxy",
    "IdentityProviderVtableBuilder",
    "IncompatiblePluginError",
    "InstanceCallbackContext",
    "IntegrityError",
    "IntegrityStatus",
    "LifecycleError",
    "LifecycleEventType",
    "LoadedPlugin",
    "LockEntry",
    "LogLevel",
    "LogMessage",
    "LogRegistry",
    "MemoryStateStore",
    "PayloadFormatError",
    "PluginCallError",
    "PluginIntegrityError",
    "PluginLoadError",
    "PluginLoader",
    "PluginLoaderConfig",
    "PluginLockfile",
    "PluginMetadata",
    "PluginProtocolError",
    "QueryResult",
    "Reaction",
    "ReactionPluginDescriptor",
    "ReactionPluginProxy",
    "ReactionProxy",
    "ReactionRuntimeContext",
    "RecoveryPolicy",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryTransportError",
    "ResultDiff",
    "SecretStorePluginProxy",
    "SecretStoreProxy",
    "SignatureVerificationError",
    "SnapshotFetcher",
    "Source",
    "SourceChange",
    "SourceEventWrapper",
    "SourcePluginDescriptor",
    "SourcePluginProxy",
    "SourceProxy",
    "SourceRuntimeContext",
    "SqliteStateStore",
    "StateStoreProvider",
    "StateStoreVtableBuilder",
    "StaticIdentityProvider",
    "SubscriptionResponse",
    "SubscriptionSettings",
    "__version__",
    "get_include",
    "host_target_triple",
]
