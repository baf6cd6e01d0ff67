"""The ``drasi-host`` command line (also ``python -m drasi_host``).

``inspect`` loads plugin libraries and prints what they contain; ``schema``
prints a factory's configuration schema; ``tail`` runs a source plugin and
prints its events; ``demo`` runs a source → Python → reaction pipeline end to
end; ``pull``, ``verify``, ``search``, ``install``, ``list``, ``remove`` and
``lock check`` work with an OCI plugin registry and a plugin directory's
lockfile (:mod:`.registry_args` defines their arguments; running them needs
the ``registry`` extra: ``pip install 'drasi-host[registry]'``).

Every failure ends with one ``drasi-host: error: ...`` line on stderr and a
non-zero exit status; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from . import __version__, loader, registry_args
from .demo import run_demo
from .errors import ConfigurationError, DrasiHostError
from .loader import HOST_SDK_VERSION, host_target_triple, load_plugin
from .logs import CallbackContext
from .models import TRACE
from .tail import plugin_files, run_tail

__all__ = ["main"]


def _plugin_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        files.extend(plugin_files(Path(raw)))
    return files


def _describe(plugin: Any) -> dict[str, Any]:
    def factories(items: Sequence[Any]) -> list[dict[str, str]]:
        return [
            {
                "kind": f.kind,
                "config_version": f.config_version,
                "config_schema_name": f.config_schema_name,
            }
            for f in items
        ]

    return {
        "path": str(plugin.path),
        "abi_version": plugin.abi_version,
        "metadata": attrs.asdict(plugin.metadata) if plugin.metadata is not None else None,
        "payload_format": plugin.payload_format,
        "sources": factories(plugin.source_plugins),
        "reactions": factories(plugin.reaction_plugins),
        "bootstrap_providers": factories(plugin.bootstrap_plugins),
        "identity_providers": factories(plugin.identity_provider_plugins),
        "secret_stores": factories(plugin.secret_store_plugins),
    }


def _print_plugin(info: dict[str, Any]) -> None:
    print(info["path"])
    print(f"  abi {info['abi_version']}")
    meta = info["metadata"]
    if meta is None:
        print("  metadata: none exported")
    else:
        print(
            f"  sdk {meta['sdk_version']}  core {meta['core_version']}  lib {meta['lib_version']}"
            f"  plugin {meta['plugin_version']}  target {meta['target_triple']}"
        )
        print(f"  commit {meta['git_commit']}  built {meta['build_timestamp']}")
    if info["abi_version"] == "0.4":
        print(f"  payload format: {info['payload_format'] or 'opaque (none exported)'}")
    else:
        print("  payload format: MessagePack (fixed by the ABI)")
    for title, key in (
        ("source", "sources"),
        ("reaction", "reactions"),
        ("bootstrap", "bootstrap_providers"),
        ("identity", "identity_providers"),
        ("secrets", "secret_stores"),
    ):
        for f in info[key]:
            print(
                f"  {title:9} {f['kind']:24} config {f['config_version']:8}"
                f" schema {f['config_schema_name']}"
            )


def cmd_inspect(args: argparse.Namespace) -> int:
    callbacks = CallbackContext(instance_id="drasi-host-inspect")
    results: list[dict[str, Any]] = []
    failed = 0
    files = _plugin_files(args.paths)
    if not files:
        if args.json:  # an empty list is a complete answer
            print("[]")
            return 0
        print("drasi-host: no plugin libraries found", file=sys.stderr)
        return 1
    for path in files:
        try:
            with load_plugin(path, callbacks) as plugin:
                info = _describe(plugin)
        except DrasiHostError as exc:
            failed += 1
            info = {"path": str(path), "error": str(exc), "error_type": type(exc).__name__}
            if not args.json:
                print(f"{path}\n  FAILED ({type(exc).__name__}): {exc}", file=sys.stderr)
            results.append(info)
            continue
        results.append(info)
        if not args.json:
            _print_plugin(info)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(events=args.events, plugin_dir=args.plugins, quiet=args.quiet)


def _abi_versions() -> str:
    supported = getattr(loader, "SUPPORTED_SDK_VERSIONS", None)
    if supported:
        return ", ".join(str(v) for v in supported) + f" (host SDK {HOST_SDK_VERSION})"
    return HOST_SDK_VERSION


def version_text() -> str:
    """What ``drasi-host --version`` prints."""
    return (
        f"drasi-host {__version__}\n"
        f"plugin ABI: {_abi_versions()}\n"
        f"target: {host_target_triple()}\n"
        f"python: {platform.python_implementation()} {platform.python_version()}"
    )


class _VersionAction(argparse.Action):
    """``--version``: prints :func:`version_text` as it is (no rewrapping) and exits."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit()


def _config_arg(text: str | None) -> dict[str, Any]:
    """``--config``: a JSON object, or ``@FILE`` holding one."""
    if text is None:
        return {}
    where = "--config"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--config {where}: {exc.strerror or exc}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{where}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _log_level(name: str) -> int:
    levels = {
        "trace": TRACE,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "off": logging.CRITICAL + 10,
    }
    try:
        return levels[name.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown log level {name!r} (choose from {', '.join(levels)})"
        ) from None


def cmd_tail(args: argparse.Namespace) -> int:
    logging.getLogger("drasi.plugin").setLevel(args.log_level)
    return run_tail(
        Path(args.path),
        args.kind,
        config=_config_arg(args.config),
        source_id=args.id,
        query_id=args.query_id,
        nodes=args.nodes,
        relations=args.relations,
        bootstrap=args.bootstrap,
        count=args.count,
        as_json=args.json,
        on_ready=args.on_ready,
    )


_FACTORY_LISTS = {
    "source": "source_plugins",
    "reaction": "reaction_plugins",
    "bootstrap": "bootstrap_plugins",
}


def cmd_schema(args: argparse.Namespace) -> int:
    callbacks = CallbackContext(instance_id="drasi-host-schema")
    files = plugin_files(Path(args.path))
    if not files:
        raise ConfigurationError(f"{args.path}: no plugin libraries in this directory")
    types = [args.type] if args.type else list(_FACTORY_LISTS)
    matches: list[tuple[str, Path, dict[str, Any]]] = []
    kinds: set[str] = set()
    for file in files:
        with load_plugin(file, callbacks) as plugin:
            for component_type in types:
                for factory in getattr(plugin, _FACTORY_LISTS[component_type]):
                    kinds.add(f"{component_type} {factory.kind}")
                    if factory.kind == args.kind:
                        matches.append((component_type, file, factory.config_schema_json()))
    if not matches:
        raise ConfigurationError(
            f"{args.path}: no factory of kind {args.kind!r} "
            f"(found: {', '.join(sorted(kinds)) or 'none'})"
        )
    if len(matches) > 1:
        where = ", ".join(f"{t} in {f.name}" for t, f, _ in matches)
        raise ConfigurationError(
            f"kind {args.kind!r} is offered more than once ({where}); "
            "choose one with --type or a single library"
        )
    json.dump(matches[0][2], sys.stdout, indent=2)
    print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drasi-host", description="Host tools for Drasi plugins.")
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="print the package version, the plugin ABI versions and the target, then exit",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (repeatable)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error and debug logs"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --debug is also accepted after the command; SUPPRESS keeps a global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    p = sub.add_parser(
        "inspect", parents=[common], help="load plugins and print their metadata and factories"
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="a plugin library or a directory of them"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "schema",
        parents=[common],
        help="print the configuration schema of a plugin factory",
        description="Print the JSON schema of the configuration a factory accepts.",
    )
    p.add_argument("path", metavar="LIB_OR_DIR", help="a plugin library or a directory of them")
    p.add_argument("--kind", required=True, help="the factory kind")
    p.add_argument("--type", choices=sorted(_FACTORY_LISTS), default=None, help="the factory type")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "tail",
        parents=[common],
        help="run a source plugin and print its events",
        description=(
            "Create, initialise (memory state store) and start a source, subscribe one "
            "query and print every event it sends: one line per event, or JSON lines "
            "with --json. Ctrl-C stops it (exit status 130). Plugin logs go to stderr."
        ),
    )
    p.add_argument("path", metavar="LIB_OR_DIR", help="a plugin library or a directory of them")
    p.add_argument("--kind", required=True, help="the source factory kind")
    p.add_argument("--config", default=None, metavar="JSON|@FILE", help="the source configuration")
    p.add_argument("--id", default="tail", help="the source id (default: tail)")
    p.add_argument("--query-id", default="drasi-host-tail", help="the subscribing query id")
    p.add_argument("--nodes", nargs="*", default=[], metavar="LABEL", help="node labels")
    p.add_argument("--relations", nargs="*", default=[], metavar="LABEL", help="relation labels")
    p.add_argument("--bootstrap", action="store_true", help="ask for bootstrap data first")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N events")
    p.add_argument("--json", action="store_true", help="one JSON document per line")
    p.add_argument(
        "--log-level",
        type=_log_level,
        default=logging.WARNING,
        metavar="LEVEL",
        help="plugin logs shown on stderr: trace, debug, info, warn, error or off (default: warn)",
    )
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run a source -> Python -> reaction pipeline end to end",
        description=(
            "Run the demo source and reaction plugins. Without --plugins they are "
            "compiled from the bundled C sources with the C compiler ($CC, else cc), "
            "once per source version."
        ),
    )
    p.add_argument(
        "--events", type=int, default=1000, help="events the source emits (default 1000)"
    )
    p.add_argument(
        "--plugins",
        type=Path,
        default=None,
        help="directory with the demo plugins (default: build them from the bundled sources)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_demo)

    registry_args.add_commands(sub)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes log records to stderr.  While a command sets up its plugins,
    records of plugin loggers (``drasi.plugin.*``) are held back: if the setup
    fails, those the error message already quotes (a plugin's refusal) are
    not printed a second time."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._held: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        held = self._held
        if held is not None and record.name.startswith("drasi.plugin"):
            held.append(record)
            return
        super().emit(record)

    def release_held(self, error: BaseException | None = None) -> None:
        """Print what was held (less what ``error`` quotes) and hold no more."""
        self.acquire()
        try:
            held, self._held = self._held or [], None
        finally:
            self.release()
        text = str(error) if error is not None else ""
        plugin_message = getattr(error, "plugin_message", None) or ""
        for record in held:
            message = record.getMessage()
            if text and (message in text or (plugin_message and plugin_message in message)):
                continue  # the error line says it
            self.handle(record)


_handler: _StderrHandler | None = None


def _configure_logging(args: argparse.Namespace) -> _StderrHandler:
    """Log records to stderr (the command line owns the process's root logger)."""
    global _handler
    logging.addLevelName(TRACE, "TRACE")
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(_handler)
    level = logging.DEBUG if args.debug else logging.WARNING - 10 * args.verbose
    root.setLevel(max(level, logging.DEBUG))
    return _handler


def _unconfigure_logging(handler: _StderrHandler) -> None:
    global _handler
    logging.getLogger().removeHandler(handler)
    if _handler is handler:
        _handler = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first, _, rest = text.partition("\n")
    if not isinstance(exc, DrasiHostError):
        first = f"{type(exc).__name__}: {first}" if str(exc).strip() else first
    if rest:
        first += " (--debug shows more)"
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.  The stderr log handler
    it installs on the root logger is removed again when it returns."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = _configure_logging(args)
    args.on_ready = handler.release_held
    try:
        return _run(args, handler)
    finally:
        _unconfigure_logging(handler)


def _run(args: argparse.Namespace, handler: _StderrHandler) -> int:
    try:
        status = int(args.func(args))
    except KeyboardInterrupt:
        handler.release_held()
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - never closed: the process ends
        return 141
    except Exception as exc:
        handler.release_held(exc)
        if args.debug:
            traceback.print_exc()
        print(f"drasi-host: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    handler.release_held()
    return status


if __name__ == "__main__":
    sys.exit(main())
