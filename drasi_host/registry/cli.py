"""``drasi-host`` registry commands: ``pull``, ``verify`` and ``search``.

``add_commands(subparsers)`` adds them to an argparse parser; each sets
``func(args) -> int`` (the exit code: 0 success, 1 error, 2 signature not
verified) and runs its async work with ``anyio.run``.

* ``pull REF --dest DIR``: a reference whose tag carries a platform suffix
  (``0.1.8-linux-amd64``) or a digest is downloaded as it is; otherwise it is
  resolved for this host first.  Signatures are verified unless
  ``--no-verify``.  Progress goes to stderr as a bar when stderr is a terminal;
  the result is one line on stdout.
* ``verify REF``: prints the verification result.
* ``search QUERY [--json]``: lists plugins of the directory with their versions.

Credentials come from ``--username``/``--password`` or the environment
(``DRASI_REGISTRY_USERNAME``/``DRASI_REGISTRY_PASSWORD``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from drasi_host.errors import DrasiHostError, SignatureVerificationError
from drasi_host.registry.oci import OciRegistryClient, RegistryAuth, RegistryConfig
from drasi_host.registry.platform import strip_arch_suffix
from drasi_host.registry.reference import DEFAULT_REGISTRY

if TYPE_CHECKING:
    from drasi_host.registry.cosign import CosignVerifier, VerificationResult

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNVERIFIED = 2


def _add_common(parser: argparse.ArgumentParser, *, verification: bool) -> None:
    parser.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        help=f"registry (and namespace) of short references (default {DEFAULT_REGISTRY})",
    )
    parser.add_argument(
        "--insecure",
        action="append",
        default=[],
        metavar="HOST",
        help="reach HOST (host:port) over plain HTTP; repeatable",
    )
    parser.add_argument(
        "--username", default=None, help="registry user (default $DRASI_REGISTRY_USERNAME)"
    )
    parser.add_argument(
        "--password", default=None, help="registry password (default $DRASI_REGISTRY_PASSWORD)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    if verification:
        parser.add_argument(
            "--trusted-identity",
            action="append",
            default=[],
            metavar="ISSUER=PATTERN",
            help="accept signatures by this OIDC issuer and subject glob; "
            "repeatable (default: drasi-project GitHub Actions)",
        )
        parser.add_argument(
            "--trusted-root",
            default=None,
            metavar="PATH",
            help="Sigstore trusted_root.json (default: the bundled one)",
        )


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pull``, ``verify`` and ``search`` to ``subparsers``."""
    pull = subparsers.add_parser("pull", help="download a plugin from an OCI registry")
    pull.add_argument("ref", help="plugin reference, e.g. source/postgres:0.1.8")
    pull.add_argument("--dest", required=True, help="directory to write the plugin to")
    pull.add_argument("--no-verify", action="store_true", help="skip signature verification")
    _add_common(pull, verification=True)
    pull.set_defaults(func=_pull)

    verify = subparsers.add_parser("verify", help="verify a plugin's signature")
    verify.add_argument("ref", help="plugin reference (tag or digest)")
    _add_common(verify, verification=True)
    verify.set_defaults(func=_verify)

    search = subparsers.add_parser("search", help="search the plugin directory")
    search.add_argument(
        "query",
        nargs="?",
        default="",
        help="substring of the kind, or type/kind; empty or * lists all",
    )
    search.add_argument("--json", action="store_true", help="print JSON")
    _add_common(search, verification=False)
    search.set_defaults(func=_search)


def _config(args: argparse.Namespace) -> RegistryConfig:
    username = args.username or os.environ.get("DRASI_REGISTRY_USERNAME")
    password = args.password or os.environ.get("DRASI_REGISTRY_PASSWORD")
    auth = RegistryAuth.basic(username, password or "") if username else RegistryAuth.anonymous()
    return RegistryConfig(
        default_registry=args.registry,
        auth=auth,
        insecure_registries=list(args.insecure),
        timeout=args.timeout,
    )


def _verifier(args: argparse.Namespace, enabled: bool) -> CosignVerifier:
    from drasi_host.registry.cosign import CosignVerifier, TrustedIdentity, VerificationConfig

    identities = []
    for item in args.trusted_identity:
        issuer, sep, pattern = item.partition("=")
        if not sep or not issuer or not pattern:
            raise DrasiHostError(f"--trusted-identity {item!r}: expected ISSUER=PATTERN")
        identities.append(TrustedIdentity(issuer=issuer, subject_pattern=pattern))
    return CosignVerifier(
        VerificationConfig(
            enabled=enabled, trusted_identities=identities, trusted_root=args.trusted_root
        )
    )


def _run(work: Callable[[], Awaitable[int]], unverified_hint: str = "") -> int:
    try:
        return anyio.run(work)
    except SignatureVerificationError as exc:
        print(f"error: {exc}{unverified_hint}", file=sys.stderr)
        return EXIT_UNVERIFIED
    except DrasiHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


class _ProgressBar:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 100
        if percent == self.last:
            return
        self.last = percent
        filled = percent * 30 // 100
        self.stream.write(
            f"\r[{'#' * filled}{' ' * (30 - filled)}] {percent:3d}% "
            f"{done / 1048576:.1f}/{total / 1048576:.1f} MiB"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _describe(result: VerificationResult | None) -> str:
    if result is None:
        return "not checked"
    text = result.status.value
    if result.subject:
        text += f" ({result.subject} via {result.issuer})"
    elif result.reason:
        text += f" ({result.reason})"
    return text


def _pull(args: argparse.Namespace) -> int:
    async def work() -> int:
        verifier = _verifier(args, enabled=not args.no_verify)
        async with OciRegistryClient(_config(args), verifier=verifier) as client:
            parsed = client.parse(args.ref)
            ref: str = args.ref
            if not parsed.digest and not (parsed.tag and strip_arch_suffix(parsed.tag)):
                from drasi_host.registry.resolver import HostVersionInfo, PluginResolver

                resolved = await PluginResolver(client, HostVersionInfo.current()).resolve(parsed)
                ref = resolved.reference
            bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
            try:
                result = await client.download_plugin(ref, args.dest, progress=bar)
            finally:
                if bar is not None:
                    bar.finish()
        print(
            f"pulled {parsed} -> {result.path} ({result.digest}, {result.size} bytes, "
            f"signature {_describe(result.verification)})"
        )
        return EXIT_OK

    return _run(work, " (--no-verify downloads it without checking the signature)")


def _verify(args: argparse.Namespace) -> int:
    async def work() -> int:
        from drasi_host.registry.cosign import SignatureStatus

        verifier = _verifier(args, enabled=True)
        async with OciRegistryClient(_config(args), verifier=verifier) as client:
            parsed = client.parse(args.ref)
            result = await verifier.verify_plugin(parsed)
        print(f"{parsed}: {_describe(result)}")
        return EXIT_OK if result.status == SignatureStatus.VERIFIED else EXIT_UNVERIFIED

    return _run(work)


def _search(args: argparse.Namespace) -> int:
    async def work() -> int:
        async with OciRegistryClient(_config(args)) as client:
            results = await client.search_plugins(args.query)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "type": r.type,
                            "kind": r.kind,
                            "reference": r.reference,
                            "full_reference": r.full_reference,
                            "versions": [
                                {"version": v.version, "suffixes": list(v.suffixes)}
                                for v in r.versions
                            ],
                            "error": r.error,
                        }
                        for r in results
                    ],
                    indent=2,
                )
            )
        else:
            for r in results:
                if r.error:
                    print(f"{r.reference}\t(error: {r.error})")
                    continue
                versions = ", ".join(f"{v.version} [{' '.join(v.suffixes)}]" for v in r.versions)
                print(f"{r.reference}\t{versions or '(no versions)'}")
        return EXIT_ERROR if any(r.error for r in results) else EXIT_OK

    return _run(work)


__all__ = ["add_commands"]
