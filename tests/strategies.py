"""Hypothesis strategies for the data model, shared by the test modules.

Everything generated is representable in every payload format: integers
within 64 bits, finite floats, strings without lone surrogates, string keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from hypothesis import strategies as st

from drasi_host.models import (
    ChangeOp,
    Element,
    ElementReference,
    ElementType,
    QueryResult,
    ResultDiff,
    SourceChange,
)

_ids = st.text(max_size=12)
_element_types: list[ElementType] = ["node", "relation"]
_labels = st.lists(st.text(min_size=1, max_size=10), max_size=3)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Nested JSON values: null, bools, 64-bit ints, finite floats, strings,
    lists and string-keyed objects."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_objects(max_size: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects (property maps, result rows)."""
    return st.dictionaries(st.text(max_size=10), json_values(), max_size=max_size)


def element_references() -> st.SearchStrategy[ElementReference]:
    return st.builds(ElementReference, _ids, _ids)


@st.composite
def source_changes(draw: st.DrawFn) -> SourceChange:
    """Inserts, updates and deletes of nodes and relations; some deletes
    carry the minimal element (no properties, no relation ends)."""
    op = draw(st.sampled_from(ChangeOp))
    element_type = draw(st.sampled_from(_element_types))
    minimal = op is ChangeOp.DELETE and draw(st.booleans())
    in_node = out_node = None
    if element_type == "relation" and not minimal:
        in_node = draw(element_references())
        out_node = draw(element_references())
    element = Element(
        element_type,
        draw(element_references()),
        draw(_labels),
        draw(st.integers(min_value=0, max_value=2**64 - 1)),
        {} if minimal else draw(json_objects()),
        in_node,
        out_node,
    )
    return SourceChange(op, element)


def result_diffs() -> st.SearchStrategy[ResultDiff]:
    """Every kind of result diff."""
    return st.one_of(
        st.builds(ResultDiff.add, json_objects()),
        st.builds(ResultDiff.delete, json_objects()),
        st.builds(
            ResultDiff.update,
            json_objects(),
            json_objects(),
            json_objects(),
            st.none() | st.lists(st.text(max_size=8), max_size=3),
        ),
        st.builds(ResultDiff.aggregation, st.none() | json_objects(), json_objects()),
        st.just(ResultDiff.noop()),
    )


def timestamps() -> st.SearchStrategy[datetime]:
    """Naive (meaning UTC), UTC and fixed-offset datetimes."""
    offsets = st.integers(min_value=-1439, max_value=1439).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    zones: st.SearchStrategy[tzinfo | None] = st.one_of(st.none(), st.just(timezone.utc), offsets)
    naive = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1))
    return st.builds(lambda moment, zone: moment.replace(tzinfo=zone), naive, zones)


def query_results() -> st.SearchStrategy[QueryResult]:
    return st.builds(
        QueryResult,
        _ids,
        timestamps(),
        st.lists(result_diffs(), max_size=4),
        json_objects(max_size=3),
    )
