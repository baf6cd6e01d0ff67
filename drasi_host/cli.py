"""The ``drasi-host`` command line.

``inspect`` loads plugin libraries and prints what they contain; ``demo``
runs a source → Python → reaction pipeline end to end; ``pull``, ``verify``
and ``search`` talk to an OCI plugin registry (they need the ``registry``
extra: ``pip install 'drasi-host[registry]'``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .demo import run_demo
from .errors import DrasiHostError
from .loader import LIBRARY_SUFFIXES, load_plugin
from .logs import CallbackContext

__all__ = ["main"]


def _plugin_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix in LIBRARY_SUFFIXES)
            )
        else:
            files.append(path)
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
        "metadata": attrs.asdict(plugin.metadata) if plugin.metadata is not None else None,
        "payload_format": plugin.payload_format,
        "sources": factories(plugin.source_plugins),
        "reactions": factories(plugin.reaction_plugins),
        "bootstrap_providers": factories(plugin.bootstrap_plugins),
    }


def _print_plugin(info: dict[str, Any]) -> None:
    print(info["path"])
    meta = info["metadata"]
    if meta is None:
        print("  metadata: none exported")
    else:
        print(
            f"  sdk {meta['sdk_version']}  core {meta['core_version']}  lib {meta['lib_version']}"
            f"  plugin {meta['plugin_version']}  target {meta['target_triple']}"
        )
        print(f"  commit {meta['git_commit']}  built {meta['build_timestamp']}")
    print(f"  payload format: {info['payload_format'] or 'opaque (none exported)'}")
    for title, key in (
        ("source", "sources"),
        ("reaction", "reactions"),
        ("bootstrap", "bootstrap_providers"),
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
        print("no plugin libraries found", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drasi-host", description="Host tools for Drasi plugins.")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (repeatable)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="load plugins and print their metadata and factories")
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="a plugin library or a directory of them"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("demo", help="run a source -> Python -> reaction pipeline end to end")
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

    try:
        from .registry.cli import add_commands
    except ImportError as exc:  # the registry extra is not installed
        missing = str(exc)

        def unavailable(args: argparse.Namespace) -> int:
            print(
                f"registry commands need the 'registry' extra "
                f"(pip install 'drasi-host[registry]'): {missing}",
                file=sys.stderr,
            )
            return 2

        for name in ("pull", "verify", "search", "install", "list", "remove", "lock"):
            q = sub.add_parser(name, help="(needs the registry extra)")
            q.add_argument("args", nargs=argparse.REMAINDER)
            q.set_defaults(func=unavailable)
    else:
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except DrasiHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
