"""The library leaves logging output to the application: importing and using
it adds no handlers to loggers it does not own, its own records do not reach
Python's last-resort stderr handler, and plugin logs go to
``drasi.plugin.<component>``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import drasi_host

PACKAGE_ROOT = Path(drasi_host.__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path

    import anyio

    import drasi_host, drasi_host.cli, drasi_host.demo, drasi_host.tail
    from drasi_host import CallbackContext, MemoryStateStore, SourceRuntimeContext
    from drasi_host.loader import load_plugin

    def handlers():
        loggers = [logging.getLogger()] + [
            logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
        ]
        return {
            lg.name: [type(h).__name__ for h in lg.handlers] for lg in loggers if lg.handlers
        }

    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.name)

    async def main():
        callbacks = CallbackContext(instance_id="manners")
        with load_plugin(Path(sys.argv[1]), callbacks) as plugin:
            source = await plugin.source_plugins[0].create_source("src-7", {"event_count": 1})
            async with source:
                await source.initialize(
                    SourceRuntimeContext("manners", "src-7", state_store=MemoryStateStore())
                )
                await source.start()
                await source.stop()

    # The plugin records are caught before they propagate anywhere.
    plugin_logger = logging.getLogger("drasi.plugin")
    plugin_logger.addHandler(Collect())
    plugin_logger.setLevel(1)
    plugin_logger.propagate = False
    anyio.run(main)
    plugin_logger.handlers.clear()
    logging.getLogger("drasi_host.loader").warning("a library warning")
    print(handlers())
    print(sorted(set(seen)))
    """
)


def test_the_library_adds_no_handlers_and_stays_quiet(fixture_plugins: dict[str, Path]) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(fixture_plugins["source"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=PACKAGE_ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # No last-resort output: the library's warning went to its NullHandler only.
    assert proc.stderr == ""
    handlers_line, seen_line = proc.stdout.splitlines()
    assert handlers_line == "{'drasi_host': ['NullHandler']}"
    # Under the component id; what the plugin logs before a component exists
    # goes under its plugin id ("fixture").
    assert "'drasi.plugin.src-7'" in seen_line
    assert set(ast.literal_eval(seen_line)) <= {"drasi.plugin.src-7", "drasi.plugin.fixture"}
