"""Run the lifecycle, receiver, 0.13 loading, 0.13 host-service, 0.13
data-path and 0.13 component suites (the ``memcheck`` tox env runs this
under valgrind memcheck and again with glibc's ``MALLOC_CHECK_=3``).

Usage: ``python tests/memcheck_suites.py [pytest options]``.  The suites are
the files named in :data:`SUITES` plus every ``tests/test_lifecycle*.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUITES = (
    "test_native.py",
    "test_source.py",
    "test_receivers.py",
    "test_channels.py",
    "test_reaction.py",
    "test_bootstrap.py",
    "test_hostile_boundary.py",
    "test_loader013.py",
    "test_services013.py",
    "test_channels013.py",
    "test_data013.py",
    "test_components013.py",
    "test_mixed_generations.py",
    "test_memstore.py",
)


def suites() -> list[str]:
    """The suite files, existing ones only, in a stable order."""
    files = [TESTS / name for name in SUITES] + sorted(TESTS.glob("test_lifecycle*.py"))
    return [str(f) for f in dict.fromkeys(files) if f.is_file()]


if __name__ == "__main__":
    root = TESTS.parent
    args = ["-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-p", "no:cacheprovider"]
    sys.exit(pytest.main([*args, *sys.argv[1:], *suites()]))
