"""The registry package's layers import only downwards: the client knows
nothing of signatures, discovery sits on the client, verification does no
I/O, and nothing hides a cycle behind a function-local import."""

from __future__ import annotations

import ast
from pathlib import Path

import drasi_host.registry

PACKAGE = Path(drasi_host.registry.__file__).parent
OFFLINE = {"materials", "policy", "trust", "bundles", "simplesigning", "verification"}
NETWORK = {"httpx", "socket", "urllib", "requests", "drasi_host.registry.distribution"}


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(modules imported at top level, names imported inside functions)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top: set[str] = set()
    local: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
            if node.col_offset == 0:
                top.update(names)
            else:
                local.extend(names)
    return top, local


def _registry_deps(module: str) -> set[str]:
    prefix = "drasi_host.registry."
    return {name[len(prefix) :] for name in _imports(module)[0] if name.startswith(prefix)}


def test_no_function_local_imports() -> None:
    for path in PACKAGE.glob("*.py"):
        _, local = _imports(path.stem)
        assert local == [], f"{path.name} imports inside a function: {local}"


def test_no_cycles() -> None:
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    done: set[str] = set()

    def visit(module: str, stack: tuple[str, ...]) -> None:
        assert module not in stack, " -> ".join((*stack, module))
        if module in done:
            return
        for dep in _registry_deps(module):
            visit(dep, (*stack, module))
        done.add(module)

    for module in modules:
        visit(module, ())


def test_client_knows_nothing_of_signatures() -> None:
    deps = _registry_deps("distribution")
    assert deps.isdisjoint({"signatures", "cosign", "verification", "pull", "oci", *OFFLINE})


def test_discovery_sits_on_the_client_without_crypto() -> None:
    deps = _registry_deps("signatures")
    assert "distribution" in deps
    assert deps.isdisjoint({"bundles", "simplesigning", "verification", "cosign", "trust"})


def test_verification_is_offline() -> None:
    for module in OFFLINE:
        top, _ = _imports(module)
        reached = {name for name in top for banned in NETWORK if name.startswith(banned)}
        assert not reached, f"{module} imports {reached}"
        assert _registry_deps(module) <= OFFLINE, module
