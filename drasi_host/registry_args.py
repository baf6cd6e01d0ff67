"""Arguments of the ``drasi-host`` registry commands (``pull``, ``verify``,
``search``, ``install``, ``list``, ``remove``, ``lock check``).

This module is part of the core package and imports nothing of the
``registry`` extra, so every command's ``--help`` shows its real arguments
with or without the extra.  The commands themselves are in
:mod:`drasi_host.registry.cli`, imported when one runs; without the extra
that import fails and the command raises a one-line :class:`DrasiHostError`
naming the extra.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path

from .errors import DrasiHostError
from .lockfile import LOCKFILE_NAME

__all__ = ["EXTRA_HINT", "add_commands"]

#: What every registry command needs, said where it is missing.
EXTRA_HINT = "needs the 'registry' extra: pip install 'drasi-host[registry]'"

#: ``drasi_host.registry.reference.DEFAULT_REGISTRY`` as the help shows it
#: (``--registry`` defaults to None, which the commands read as that).
SHOWN_DEFAULT_REGISTRY = "ghcr.io/drasi-project"


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of command ``name``: runs ``drasi_host.registry.cli.COMMANDS[name]``."""

    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module("drasi_host.registry.cli")
        except ImportError as exc:  # the registry extra is not installed
            raise DrasiHostError(f"drasi-host {name} {EXTRA_HINT} ({exc})") from exc
        command: Callable[[argparse.Namespace], int] = module.COMMANDS[name]
        return command(args)

    return run


def _parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *, help: str
) -> argparse.ArgumentParser:
    """A command parser whose description also says what it needs."""
    return subparsers.add_parser(
        name,
        help=help,
        description=f"{help[0].upper()}{help[1:]}. This command {EXTRA_HINT}.",
    )


def _add_common(parser: argparse.ArgumentParser, *, verification: bool) -> None:
    parser.add_argument(
        "--registry",
        default=None,
        help=f"registry (and namespace) of short references (default {SHOWN_DEFAULT_REGISTRY})",
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
    """Add the registry commands (``pull``, ``verify``, ``search``, ``install``,
    ``list``, ``remove``, ``lock check``) to ``subparsers``.  Each parser's
    ``func`` imports :mod:`drasi_host.registry.cli` when the command runs."""
    pull = _parser(subparsers, "pull", help="download a plugin from an OCI registry")
    pull.add_argument("ref", help="plugin reference, e.g. source/postgres:0.1.8")
    pull.add_argument("--dest", required=True, help="directory to write the plugin to")
    pull.add_argument("--no-verify", action="store_true", help="skip signature verification")
    _add_common(pull, verification=True)
    pull.set_defaults(func=_command("pull"))

    verify = _parser(subparsers, "verify", help="verify a plugin's signature")
    verify.add_argument("ref", help="plugin reference (tag or digest)")
    _add_common(verify, verification=True)
    verify.set_defaults(func=_command("verify"))

    search = _parser(subparsers, "search", help="search the plugin directory")
    search.add_argument(
        "query",
        nargs="?",
        default="",
        help="substring of the kind, or type/kind; empty or * lists all",
    )
    search.add_argument("--json", action="store_true", help="print JSON")
    _add_common(search, verification=False)
    search.set_defaults(func=_command("search"))

    install = _parser(
        subparsers,
        "install",
        help="install plugins into a directory and record them in its lockfile",
    )
    install.add_argument("refs", nargs="*", metavar="REF", help="plugin references")
    install.add_argument(
        "--locked",
        action="store_true",
        help="install exactly what the lockfile names (no REF): locked digests and hashes",
    )
    install.add_argument("--no-verify", action="store_true", help="skip signature verification")
    _add_directory(install)
    _add_common(install, verification=True)
    install.set_defaults(func=_command("install"))

    listing = _parser(subparsers, "list", help="list the plugins of a lockfile")
    _add_directory(listing)
    listing.set_defaults(func=_command("list"))

    remove = _parser(subparsers, "remove", help="remove an installed plugin")
    remove.add_argument("ref", help="plugin reference (its repository is matched, any tag)")
    _add_directory(remove)
    _add_common(remove, verification=False)
    remove.set_defaults(func=_command("remove"))

    lock = _parser(subparsers, "lock", help="lockfile commands")
    lock_commands = lock.add_subparsers(dest="lock_command", required=True)
    check = _parser(
        lock_commands,
        "check",
        help="check every plugin file against the lockfile (exit 1 on any problem)",
    )
    _add_directory(check)
    check.set_defaults(func=_command("lock check"))


def _add_directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the plugin directory")
    parser.add_argument(
        "--lockfile",
        type=Path,
        default=None,
        help=f"the lockfile (default: DIR/{LOCKFILE_NAME})",
    )
