"""Property tests: whatever the options, states and parameters, only InvalidArgument escapes."""

from __future__ import annotations

import math
import os
import random
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rainbow.errors import InvalidArgument
from rainbow.selection import Selection, get_selector
from rainbow.selection.constraint import sort_clusters

NAMES = ["a", "b", "nodes_free", "cost", "s", "flag", "__class__"]
CLUSTERS = ["c0", "c1", "c2", "c3", "c4"]

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("RAINBOW_HYPOTHESIS_EXAMPLES", "150")),
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

values = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, 1, -1, 2, 9**9, 10**300, -(10**300), 2**1023]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
states = st.dictionaries(
    st.sampled_from(CLUSTERS),
    st.dictionaries(st.sampled_from(NAMES), values, max_size=len(NAMES)),
    max_size=len(CLUSTERS),
)
parameters = st.dictionaries(st.sampled_from(NAMES), values, max_size=3)

clean_atoms = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["True", "False", "true", "false", "'x'", '"a100"', "0", "0.0", "1e308", "9", "''"]),
)
hostile_atoms = st.sampled_from(
    ["__import__('os')", "().__class__", "x.y", "a[0]", "[1]", "lambda: 1", "None", "b'x'", "1j", "..."]
)
clean_operators = [
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "and",
    "or",
    "in",
    "not in",
]
clean_functions = ["min", "max", "abs", "round"]


def _grammar(atoms: st.SearchStrategy[str], operators: list[str], unary: list[str], functions: list[str]):
    def compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(operators), children).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(unary), children).map(lambda t: f"({t[0]}{t[1]})"),
            st.tuples(st.sampled_from(functions), st.lists(children, min_size=1, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
            st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        )

    return st.recursive(atoms, compose, max_leaves=10)


clean_expressions = _grammar(clean_atoms, clean_operators, ["-", "+", "not "], clean_functions)
hostile_expressions = _grammar(
    st.one_of(clean_atoms, hostile_atoms),
    [*clean_operators, "^", "|", "<<", "is", "@"],
    ["-", "+", "not ", "~", "*"],
    [*clean_functions, "int", "open", "eval", "getattr", "__import__"],
)


numbers = st.recursive(
    st.one_of(
        st.sampled_from(NAMES),
        st.integers(min_value=-1000, max_value=1000).map(str),
        st.floats(min_value=-1e6, max_value=1e6).map(repr),
    ),
    lambda children: st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda text: f"-{text}"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        children.map(lambda text: f"abs({text})"),
        children.map(lambda text: f"round({text}, 2)"),
    ),
    max_leaves=6,
)
conditions = st.recursive(
    st.tuples(numbers, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), numbers).map(" ".join),
    lambda children: st.one_of(
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda text: f"not ({text})"),
    ),
    max_leaves=3,
)


def _priorities(expressions: st.SearchStrategy[str], filters: st.SearchStrategy[str] | None = None):
    step = st.one_of(
        (expressions if filters is None else filters).map(lambda text: {"filter": text}),
        st.tuples(st.sampled_from(NAMES[:-1]), expressions).map(lambda t: {"calc": f"{t[0]}={t[1]}"}),
        st.sampled_from(NAMES).map(lambda name: {"sort_descending": name}),
        st.sampled_from(NAMES).map(lambda name: {"sort_ascending": name}),
    )
    return st.lists(
        st.tuples(st.lists(step, min_size=1, max_size=4), st.sampled_from(["first", "last", "random", None])),
        min_size=1,
        max_size=3,
    )


def _options(drawn: list[tuple[list[dict], str | None]]) -> dict[str, Any]:
    items = []
    for steps, method in drawn:
        items.append({"steps": steps + ([{"select": method}] if method else [])})
    return {"priorities": items}


def _check(selection: Selection, candidates: list[str]) -> None:
    assert isinstance(selection, Selection)
    assert len(set(selection.clusters)) == len(selection.clusters)
    assert set(selection.clusters) <= set(candidates)
    assert selection.reason.startswith("constraint: ")
    if selection.clusters:
        assert f"picked {selection.clusters[0]!r}" in selection.reason
    else:
        assert "no cluster passed" in selection.reason or "no candidate" in selection.reason


@PROPERTY_SETTINGS
@given(
    st.one_of(
        _priorities(numbers, conditions),
        _priorities(clean_expressions),
        _priorities(hostile_expressions),
    ),
    states,
    parameters,
    st.lists(st.sampled_from(CLUSTERS), max_size=6),
    st.integers(0, 2**32),
)
def test_generated_priorities_only_raise_invalid_argument(
    drawn, cluster_states, params, candidates, seed
) -> None:
    try:
        selector = get_selector("constraint", _options(drawn))
    except InvalidArgument:
        event("options refused")
        return
    try:
        selection = selector.select(candidates, cluster_states, params, rng=random.Random(seed))
    except InvalidArgument:
        event("parameters refused")
        return
    event("selected one" if selection.clusters else "nobody passed")
    _check(selection, candidates)


@PROPERTY_SETTINGS
@given(st.text(max_size=80), st.sampled_from(["filter", "calc"]), states, parameters)
def test_arbitrary_text_only_raises_invalid_argument(text, kind, cluster_states, params) -> None:
    source = text if kind == "filter" else f"x={text}"
    try:
        selector = get_selector("constraint", {"priorities": [{"steps": [{kind: source}]}]})
    except InvalidArgument:
        return
    try:
        selection = selector.select(CLUSTERS, cluster_states, params)
    except InvalidArgument:
        return
    _check(selection, CLUSTERS)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["priority", "steps", "filter", "calc", "select", "sort_ascending", "x"]),
            children,
            max_size=3,
        ),
    ),
    max_leaves=15,
)


@PROPERTY_SETTINGS
@given(st.one_of(json_like, st.text(max_size=200)))
def test_arbitrary_option_shapes_only_raise_invalid_argument(value) -> None:
    try:
        get_selector("constraint", {"priorities": value})
    except InvalidArgument as error:
        assert error.message


@PROPERTY_SETTINGS
@given(st.dictionaries(st.sampled_from(CLUSTERS), values, max_size=len(CLUSTERS)), st.booleans())
def test_sort_reference(by_cluster, descending) -> None:
    clusters = list(CLUSTERS)
    table = {cluster: ({"k": by_cluster[cluster]} if cluster in by_cluster else {}) for cluster in clusters}
    visible = {
        cluster: {key: v for key, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        for cluster, row in table.items()
    }
    result = sort_clusters(clusters, visible, "k", descending=descending)
    assert sorted(result) == sorted(clusters)

    def group(cluster: str) -> int:
        v = visible[cluster].get("k")
        if isinstance(v, str):
            return 1
        if isinstance(v, (bool, int, float)):
            return 0
        return 2

    groups = [group(cluster) for cluster in result]
    assert groups == sorted(groups)
    for first, second in pairwise(result):
        if group(first) == group(second) < 2:
            a, b = visible[first]["k"], visible[second]["k"]
            assert (a >= b) if descending else (a <= b)
            if a == b:
                assert clusters.index(first) < clusters.index(second)
        elif group(first) == group(second) == 2:
            assert clusters.index(first) < clusters.index(second)
