"""The ``drasi-host`` command line as a user runs it: a real subprocess
(``python -m drasi_host``, or the installed ``drasi-host`` script) against the
fixture plugins built by the session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import drasi_host
from drasi_host import HOST_SDK_VERSION, host_target_triple

PACKAGE_ROOT = Path(drasi_host.__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (extra.pop("PYTHONPATH", ""), str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def run(
    *args: str, timeout: float = 60, cwd: Path = PACKAGE_ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drasi_host", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=cwd,  # `-m` puts the working directory first on sys.path
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drasi-host: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def source_lib(fixture_plugins: dict[str, Path]) -> Path:
    return fixture_plugins["source"]


# ------------------------------------------------------------------ --version


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"drasi-host {drasi_host.__version__}"
    assert HOST_SDK_VERSION in lines[1] and lines[1].startswith("plugin ABI: ")
    assert lines[2] == f"target: {host_target_triple()}"


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "drasi-host"
    if not script.exists():
        pytest.skip("the drasi-host console script is not installed next to this Python")
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"drasi-host {drasi_host.__version__}\n")


def test_no_command_is_a_usage_error() -> None:
    proc = run()
    assert proc.returncode == 2
    assert "usage: drasi-host" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------- tail


def test_tail_prints_n_readable_lines(source_lib: Path) -> None:
    proc = run(
        "tail",
        str(source_lib),
        "--kind",
        "fixture",
        "--config",
        '{"event_count": 50}',
        "--count",
        "7",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 7
    # The fixture cycles insert, update, delete; every 4th element is a KNOWS relation.
    ops = ["insert", "update", "delete"]
    for i, line in enumerate(lines):
        op, label, entity, *_ = line.split()
        expected = ("KNOWS", f"r{i}") if i % 4 == 3 else ("Person", f"n{i}")
        assert (op, label, entity) == (ops[i % 3], *expected)
        if op != "delete" and label == "Person":
            assert f"i={i}" in line and f"name='node-{i}'" in line
    assert "Traceback" not in proc.stderr


def test_tail_json_lines_with_bootstrap(source_lib: Path) -> None:
    config = {"event_count": 20, "bootstrap_count": 3, "label": "Robot"}
    proc = run(
        "tail",
        str(source_lib.parent),
        "--kind",
        "fixture",
        "--config",
        json.dumps(config),
        "--bootstrap",
        "--nodes",
        "Robot",
        "--count",
        "8",
        "--json",
        "--id",
        "src-1",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 8
    assert [r.get("bootstrap", False) for r in records] == [True] * 3 + [False] * 5
    assert [r["sequence"] for r in records[:3]] == [0, 1, 2]
    for r in records:
        assert r["source_id"] == "src-1"
        assert r["label"] == ("KNOWS" if r["id"].startswith("r") else "Robot")
    change = records[3]
    assert change["op"] == "insert" and change["id"] == "n0"
    assert change["element"]["labels"] == ["Robot"]
    assert change["element"]["properties"]["name"] == "node-0"
    assert change["element"]["type"] == "node"


@pytest.mark.parametrize("as_json", [False, True])
def test_tail_shows_013_control_events_and_times(
    fixture_plugins_013: dict[str, Path], as_json: bool
) -> None:
    """A 0.13 source: datetimes as RFC 3339 text, control events by kind."""
    config = {"count": 4, "mode": "control"}
    args = ["--json"] if as_json else []
    lib = str(fixture_plugins_013["v013_all"])
    proc = run("tail", lib, "--kind", "fixture013", "--config", json.dumps(config), *args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6
    if not as_json:
        assert lines[2] == "insert KNOWS r2 {since='2024-06-15T13:45:30+02:00'}"
        assert lines[3] == "delete Person n0 {}"
        assert lines[4] == "control FuturesDue {}"
        assert lines[5].startswith("control Future {element_ref='tail/n0', original_time=")
        return
    records = [json.loads(line) for line in lines]
    relation = records[2]["element"]
    assert relation["type"] == "relation"
    assert relation["properties"] == {"since": "2024-06-15T13:45:30+02:00"}
    assert records[3]["element"]["type"] is None and records[3]["op"] == "delete"
    assert "control" not in records[3]
    assert records[4]["control"] == {"kind": "FuturesDue", "data": {}}
    assert records[4]["element"] is None
    future = records[5]["control"]
    assert future["kind"] == "Future"
    assert future["data"]["element_ref"] == "tail/n0"
    assert future["data"]["group_signature"] == 0xFEEDFACECAFEBEEF


def test_tail_ends_with_the_stream_and_reads_config_files(source_lib: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"event_count": 4}))
    proc = run("tail", str(source_lib), "--kind", "fixture", "--config", f"@{config}")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 4


def test_tail_log_level(source_lib: Path) -> None:
    args = ("tail", str(source_lib), "--kind", "fixture", "--config", '{"event_count": 2}')
    loud = run(*args, "--log-level", "debug")
    assert loud.returncode == 0, loud.stderr
    assert "drasi.plugin." in loud.stderr
    quiet = run(*args, "--log-level", "error")
    assert quiet.returncode == 0, quiet.stderr
    assert "drasi.plugin." not in quiet.stderr
    assert len(quiet.stdout.splitlines()) == 2
    bad = run(*args, "--log-level", "chatty")
    assert bad.returncode == 2 and "unknown log level" in bad.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_tail_stops_cleanly_on_a_signal(source_lib: Path, signum: int) -> None:
    config = {"event_count": 10_000_000, "interval_us": 20_000}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drasi_host",
            "tail",
            str(source_lib),
            "--kind",
            "fixture",
            "--config",
            json.dumps(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=PACKAGE_ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the source is running and printing
        assert first.startswith("insert Person n0"), first
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err, err
    assert err.strip() == "", err
    assert all(line.split()[0] in ("insert", "update", "delete") for line in out.splitlines())


def test_tail_errors_are_one_line(
    source_lib: Path, fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    lib = str(source_lib)
    assert_one_line_error(
        run("tail", lib, "--kind", "nope"), "no source factory of kind 'nope'", "fixture"
    )
    assert_one_line_error(run("tail", lib, "--kind", "fixture", "--config", "{oops"), "JSON")
    assert_one_line_error(run("tail", lib, "--kind", "fixture", "--config", "[1]"), "object")
    assert_one_line_error(
        run("tail", lib, "--kind", "fixture", "--config", f"@{tmp_path / 'none.json'}"),
        "none.json",
    )
    assert_one_line_error(
        run("tail", str(tmp_path / "missing.so"), "--kind", "fixture"), "missing.so"
    )
    assert_one_line_error(run("tail", str(tmp_path), "--kind", "fixture"), "no plugin libraries")
    # The plugin refuses the configuration: its reason is in the one line.
    refused = run("tail", lib, "--kind", "fixture", "--config", '{"event_count": "many"}')
    assert_one_line_error(refused, "event_count")
    # The plugin refuses to start: one line, the plugin's reason quoted once.
    failed = run("tail", lib, "--kind", "fixture", "--config", '{"fail_start": true}')
    assert_one_line_error(failed, "start refused: fail_start is set")
    assert "ExceptionGroup" not in failed.stderr
    # A plugin sending undecodable payloads: the typed error, not a task-group wrapper.
    hostile = run(
        "tail",
        str(fixture_plugins["hostile"]),
        "--kind",
        "hostile",
        "--config",
        '{"mode": "bad_json"}',
    )
    assert_one_line_error(hostile, "undecodable application/json change payload")
    # --debug adds the traceback.
    debug = run("tail", lib, "--kind", "nope", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_tail_count_zero_prints_nothing(source_lib: Path) -> None:
    proc = run("tail", str(source_lib), "--kind", "fixture", "--count", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------- schema


def test_schema(fixture_plugins: dict[str, Path], tmp_path: Path) -> None:
    proc = run("schema", str(fixture_plugins["source"]), "--kind", "fixture")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert schema["title"] == "source.fixture.FixtureSourceConfig"
    assert schema["properties"]["event_count"]["type"] == "integer"

    only = run("schema", str(fixture_plugins["multi"]), "--kind", "multi-r2")
    assert only.returncode == 0, only.stderr
    assert isinstance(json.loads(only.stdout), dict)

    # "fixture" is a source, a reaction and a bootstrap kind in this directory.
    both = tmp_path / "plugins"
    both.mkdir()
    for name in ("source", "reaction"):
        (both / fixture_plugins[name].name).symlink_to(fixture_plugins[name])
    assert_one_line_error(run("schema", str(both), "--kind", "fixture"), "--type")
    chosen = run("schema", str(both), "--kind", "fixture", "--type", "reaction")
    assert chosen.returncode == 0, chosen.stderr
    assert isinstance(json.loads(chosen.stdout), dict)
    assert_one_line_error(
        run("schema", str(both), "--kind", "nope"), "no factory of kind 'nope'", "source fixture"
    )


# ---------------------------------------------------------- inspect and demo


def test_inspect_json_on_an_empty_directory(tmp_path: Path) -> None:
    proc = run("inspect", "--json", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    text = run("inspect", str(tmp_path))
    assert text.returncode == 1
    assert "no plugin libraries found" in text.stderr


def test_demo_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("demo", "--plugins", str(tmp_path / "missing")), "not a directory")
    assert_one_line_error(run("demo", "--plugins", str(tmp_path)), "libdrasi_source_fixture")
    assert_one_line_error(
        run("demo", "--quiet", CC=str(tmp_path / "no-such-cc"), XDG_CACHE_HOME=str(tmp_path)),
        "no C compiler",
    )


def test_demo_cache_is_keyed_by_content(tmp_path: Path) -> None:
    if shutil.which("cc") is None and not os.environ.get("CC"):
        pytest.skip("no C compiler")
    cache = str(tmp_path / "cache")
    first = run("demo", "--events", "20", XDG_CACHE_HOME=cache, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "building the demo plugins" in first.stdout
    assert "built before" not in first.stdout
    second = run("demo", "--events", "20", XDG_CACHE_HOME=cache, timeout=180)
    assert second.returncode == 0, second.stderr
    assert "using the demo plugins built before" in second.stdout
    parent = tmp_path / "cache" / "drasi-host" / "demo-plugins"
    built = [p for p in parent.iterdir() if p.name != "latest"]
    assert len(built) == 1 and len(built[0].name) == 16
    assert (parent / "latest").resolve() == built[0].resolve()
    # Another compiler command is another build.
    third = run("demo", "--events", "20", XDG_CACHE_HOME=cache, CC="cc -O1", timeout=180)
    assert third.returncode == 0, third.stderr
    assert "building the demo plugins" in third.stdout
    assert len([p for p in parent.iterdir() if p.name != "latest"]) == 2
    assert (parent / "latest").resolve() != built[0].resolve()
    # tail finds the source of the last demo through the stable link.
    tail = run("tail", str(parent / "latest"), "--kind", "fixture", "--count", "2")
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) == 2


# ------------------------------------------------------------------- registry


def _without_registry_extra(tmp_path: Path) -> str:
    """A PYTHONPATH entry on which ``import httpx`` fails as when it is not installed."""
    fake = tmp_path / "no-httpx" / "httpx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'httpx'\")\n")
    return str(fake.parent)


# Each registry command: its arguments as --help shows them, and a complete
# command line that gets past argument parsing.
REGISTRY_COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "pull": (["ref", "--dest", "--no-verify", "--trusted-identity"], ["x:1", "--dest", "d"]),
    "verify": (["ref", "--trusted-root", "--registry"], ["x:1"]),
    "search": (["query", "--json", "--insecure"], ["postgres"]),
    "install": (["REF", "--locked", "--dir", "--lockfile"], ["x:1", "--dir", "d"]),
    "list": (["--dir", "--lockfile"], ["--dir", "d"]),
    "remove": (["ref", "--dir", "--username"], ["x:1", "--dir", "d"]),
    "lock check": (["--dir", "--lockfile"], ["--dir", "d"]),
}

# Runs the command line with the registry extra's modules missing, as
# `sys.modules[name] = None` makes `import name` fail.
_NO_EXTRA = (
    "import sys\n"
    "for name in ('httpx', 'cryptography', 'sigstore'):\n"
    "    sys.modules[name] = None\n"
    "from drasi_host.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_without_extra(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _NO_EXTRA, *args],
        capture_output=True,
        text=True,
        env=_env(COLUMNS="200"),
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", sorted(REGISTRY_COMMANDS))
def test_registry_commands_without_the_extra(tmp_path: Path, command: str) -> None:
    words = command.split()
    arguments, complete = REGISTRY_COMMANDS[command]
    helped = run_without_extra(*words, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert f"usage: drasi-host {command}" in helped.stdout
    for argument in arguments:
        assert argument in helped.stdout, (argument, helped.stdout)
    assert "pip install 'drasi-host[registry]'" in " ".join(helped.stdout.split())
    # Missing required arguments: the usual usage error, as with the extra.
    if command != "search":
        bare = run_without_extra(*words, cwd=tmp_path)
        assert bare.returncode == 2 and "usage: drasi-host" in bare.stderr, bare.stderr
    # A complete command: one line naming the extra and what is missing.
    proc = run_without_extra(*words, *complete, cwd=tmp_path)
    assert_one_line_error(proc, f"drasi-host {command} needs the 'registry' extra")
    assert "pip install 'drasi-host[registry]'" in proc.stderr
    assert "httpx" in proc.stderr or "cryptography" in proc.stderr or "sigstore" in proc.stderr
    assert proc.returncode == 1


def test_registry_help_with_an_extra_that_fails_to_import(tmp_path: Path) -> None:
    path = _without_registry_extra(tmp_path)
    # Run from tmp_path: from site-packages, `-m` would find the real httpx first.
    listing = run("--help", cwd=tmp_path, PYTHONPATH=path)
    assert listing.returncode == 0
    for command in ("pull", "verify", "search", "install", "list", "remove", "lock"):
        assert f"{command} " in " ".join(listing.stdout.split())
    helped = run("pull", "--help", cwd=tmp_path, PYTHONPATH=path)
    assert helped.returncode == 0, helped.stderr
    assert "--dest" in helped.stdout and "--no-verify" in helped.stdout
    proc = run("pull", "source/x:1.0", "--dest", str(tmp_path), cwd=tmp_path, PYTHONPATH=path)
    assert_one_line_error(proc, "pip install 'drasi-host[registry]'", "httpx")
    # Other commands still reject what they do not know.
    assert run("inspect", str(tmp_path), "--bogus", cwd=tmp_path, PYTHONPATH=path).returncode == 2


def test_parser_imports_nothing_of_the_extra() -> None:
    code = (
        "import sys\n"
        "from drasi_host.cli import build_parser\n"
        "build_parser().parse_args(['pull', 'x:1', '--dest', 'd'])\n"
        "heavy = ('httpx', 'cryptography', 'sigstore', 'drasi_host.registry')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_shown_default_registry_is_the_default() -> None:
    pytest.importorskip("httpx")
    from drasi_host.registry.reference import DEFAULT_REGISTRY
    from drasi_host.registry_args import SHOWN_DEFAULT_REGISTRY

    assert SHOWN_DEFAULT_REGISTRY == DEFAULT_REGISTRY


def test_pull_help_with_the_extra() -> None:
    pytest.importorskip("httpx")
    proc = run("pull", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--no-verify" in proc.stdout and "--dest" in proc.stdout


def test_status_enums_print_by_name() -> None:
    from drasi_host import ChangeOp, ComponentStatus

    assert str(ComponentStatus.RUNNING) == "RUNNING"
    assert f"{ComponentStatus.STOPPED}" == "STOPPED"
    assert f"{ChangeOp.DELETE:>8}" == "  DELETE"
    assert "RUNNING" in repr(ComponentStatus.RUNNING)
    assert ComponentStatus.RUNNING == 2 and int(ComponentStatus.RUNNING) == 2
    assert json.dumps({"status": ComponentStatus.RUNNING}) == '{"status": 2}'
