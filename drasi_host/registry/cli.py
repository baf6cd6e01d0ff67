"""``drasi-host`` registry commands: ``pull``, ``verify``, ``search``,
``install``, ``list``, ``remove`` and ``lock check``.

Their arguments are defined in :mod:`drasi_host.registry_args` (core: no
extra needed, so ``--help`` works everywhere); ``add_commands(subparsers)``
is that module's.  :data:`COMMANDS` maps each command to its function
``(args) -> int`` (the exit code: 0 success, 1 error, 2 signature not
verified); each runs its async work with ``anyio.run``.

* ``pull REF --dest DIR``: a reference whose tag carries a platform suffix
  (``0.1.8-linux-amd64``) or a digest is downloaded as it is; otherwise it is
  resolved for this host first.  Signatures are verified unless
  ``--no-verify``.  Progress goes to stderr as a bar when stderr is a terminal;
  the result is one line on stdout.
* ``verify REF``: prints the verification result.
* ``search QUERY [--json]``: lists plugins of the directory with their versions.
* ``install REF... --dir DIR``: resolves, downloads and verifies each plugin
  into DIR and records it in DIR/plugins.lock (``--lockfile`` elsewhere);
  ``install --locked`` instead installs exactly what the lockfile names (the
  locked manifest digests and file hashes), changing nothing in it.
* ``list --dir DIR``: the lockfile's entries with each file's current state.
* ``remove REF --dir DIR``: deletes the plugin of REF's repository and its entry.
* ``lock check --dir DIR``: checks every file against the lockfile and prints
  one line per file; exit code 1 when any file is not ``ok``.

Credentials come from ``--username``/``--password`` or the environment
(``DRASI_REGISTRY_USERNAME``/``DRASI_REGISTRY_PASSWORD``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from drasi_host.errors import DrasiHostError, SignatureVerificationError
from drasi_host.lockfile import LOCKFILE_NAME, IntegrityStatus, PluginLockfile
from drasi_host.registry.cosign import (
    CosignVerifier,
    SignatureStatus,
    TrustedIdentity,
    VerificationConfig,
    VerificationResult,
)
from drasi_host.registry.installer import PluginInstaller
from drasi_host.registry.oci import OciRegistryClient, RegistryAuth, RegistryConfig
from drasi_host.registry.platform import strip_arch_suffix
from drasi_host.registry.reference import DEFAULT_REGISTRY
from drasi_host.registry.resolver import HostVersionInfo, PluginResolver
from drasi_host.registry_args import add_commands

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNVERIFIED = 2


def _lockfile(args: argparse.Namespace) -> PluginLockfile:
    path = args.lockfile if args.lockfile is not None else args.dir / LOCKFILE_NAME
    return PluginLockfile.load(path)


def _config(args: argparse.Namespace) -> RegistryConfig:
    username = args.username or os.environ.get("DRASI_REGISTRY_USERNAME")
    password = args.password or os.environ.get("DRASI_REGISTRY_PASSWORD")
    auth = RegistryAuth.basic(username, password or "") if username else RegistryAuth.anonymous()
    return RegistryConfig(
        default_registry=args.registry or DEFAULT_REGISTRY,
        auth=auth,
        insecure_registries=list(args.insecure),
        timeout=args.timeout,
    )


def _verifier(args: argparse.Namespace, enabled: bool) -> CosignVerifier:
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
        verifier = _verifier(args, enabled=True)
        async with OciRegistryClient(_config(args), verifier=verifier) as client:
            parsed = client.parse(args.ref)
            result = await verifier.verify_plugin(parsed)
        print(f"{parsed}: {_describe(result)}")
        return EXIT_OK if result.status == SignatureStatus.VERIFIED else EXIT_UNVERIFIED

    return _run(work)


def _install(args: argparse.Namespace) -> int:
    async def work() -> int:
        if args.locked and args.refs:
            raise DrasiHostError("install: give REF... or --locked, not both")
        if not args.locked and not args.refs:
            raise DrasiHostError("install: give the references to install, or --locked")
        lockfile = _lockfile(args)
        verifier = _verifier(args, enabled=not args.no_verify)
        async with OciRegistryClient(_config(args), verifier=verifier) as client:
            installer = PluginInstaller(client, args.dir, lockfile)
            if args.locked:
                done = await installer.install_locked()
                print(f"{len(done)} of {len(lockfile)} locked plugin(s) (re)installed")
                return EXIT_OK
            for ref in args.refs:
                entry = await installer.install(ref)
                print(
                    f"installed {entry.reference} -> {args.dir / entry.file_name} "
                    f"({entry.digest}, signature {entry.verification.status})"
                )
        return EXIT_OK

    return _run(work)


def _list(args: argparse.Namespace) -> int:
    try:
        lockfile = _lockfile(args)
    except DrasiHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for entry in lockfile.entries():
        state = lockfile.check(args.dir / entry.file_name).value
        who = f" by {entry.verification.subject}" if entry.verification.subject else ""
        print(
            f"{entry.file_name}\t{entry.reference}\t{entry.digest}\t"
            f"signature {entry.verification.status}{who}\tinstalled {entry.installed_at}\t"
            f"file {state}"
        )
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    async def work() -> int:
        async with OciRegistryClient(_config(args)) as client:
            entry = PluginInstaller(client, args.dir, _lockfile(args)).remove(args.ref)
        print(f"removed {entry.file_name} ({entry.reference})")
        return EXIT_OK

    return _run(work)


def _lock_check(args: argparse.Namespace) -> int:
    try:
        lockfile = _lockfile(args)
    except DrasiHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    reports = lockfile.check_directory(args.dir)
    for report in reports:
        print(f"{report.status.value}\t{report.file_name}\t{report.reason}")
    bad = [r for r in reports if r.status is not IntegrityStatus.OK]
    if bad:
        print(f"{len(bad)} of {len(reports)} file(s) fail the lockfile check", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


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


#: The command functions by the name ``drasi_host.registry_args`` gives them.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "pull": _pull,
    "verify": _verify,
    "search": _search,
    "install": _install,
    "list": _list,
    "remove": _remove,
    "lock check": _lock_check,
}

__all__ = ["COMMANDS", "add_commands"]
