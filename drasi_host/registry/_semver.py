"""Strict semantic versions (``1.2.3`` or ``1.2.3-pre``, no ``v``) and ordering."""

from __future__ import annotations

import re

_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def parse_semver(text: str) -> tuple[int, int, int, str | None] | None:
    """``(major, minor, patch, prerelease)``, or None if ``text`` is not strict semver."""
    match = _SEMVER_RE.fullmatch(text)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3]), match[4]


def _pre_key(pre: str) -> tuple[tuple[int, int, str], ...]:
    # Numeric identifiers sort below alphanumeric ones, numerically among themselves.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))


def version_sort_key(text: str) -> tuple[object, ...]:
    """Orders semver by precedence (a release above its pre-releases); other strings
    sort below every semver version, among themselves as strings."""
    parsed = parse_semver(text)
    if parsed is None:
        return (0, text)
    major, minor, patch, pre = parsed
    if pre is None:
        return (1, major, minor, patch, 1, ())
    return (1, major, minor, patch, 0, _pre_key(pre))


def same_major_minor(host: str, plugin: str) -> bool:
    """Whether two versions share major.minor (equal strings if either is not semver)."""
    a, b = parse_semver(host), parse_semver(plugin)
    if a is None or b is None:
        return host == plugin
    return a[:2] == b[:2]
