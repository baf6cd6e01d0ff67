"""``OciRegistryClient``: the registry client plus verified downloads.

The transport, reading and publishing live in :mod:`.distribution`
(:class:`~drasi_host.registry.distribution.DistributionClient`, which knows
nothing of signatures); this subclass adds the optional verifier and
:meth:`OciRegistryClient.download_plugin`, which delegates to the one download
path, :func:`~drasi_host.registry.pull.pull_plugin`.
"""

from __future__ import annotations

import os

import httpx

from drasi_host.registry.cosign import CosignVerifier
from drasi_host.registry.distribution import (
    DistributionClient,
    PluginSearchResult,
    PluginVersion,
    ProgressCallback,
    RegistryAuth,
    RegistryConfig,
)
from drasi_host.registry.pull import DownloadResult, pull_plugin
from drasi_host.registry.reference import PluginReference


class OciRegistryClient(DistributionClient):
    """Reads plugin artifacts from OCI registries and downloads them, verified
    by ``verifier`` when it is given and enabled.

    ``http_client``, when given, is used as it is and not closed by
    :meth:`aclose`.  The verifier is bound to this client (unless it already
    has one), so ``verifier.verify_plugin(ref)`` works on its own too.
    """

    def __init__(
        self,
        config: RegistryConfig | None = None,
        verifier: CosignVerifier | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(config, http_client=http_client)
        self.verifier = verifier
        if verifier is not None:
            verifier.bind(self)

    async def __aenter__(self) -> OciRegistryClient:
        return self

    async def download_plugin(
        self,
        ref: str | PluginReference,
        dest_dir: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Verify (when a verifier is enabled), then download the plugin binary
        to ``dest_dir/libdrasi_<type>_<kind>.so`` (see :func:`pull_plugin`)."""
        return await pull_plugin(self, ref, dest_dir, verifier=self.verifier, progress=progress)


__all__ = [
    "DownloadResult",
    "OciRegistryClient",
    "PluginSearchResult",
    "PluginVersion",
    "ProgressCallback",
    "RegistryAuth",
    "RegistryConfig",
]
