"""The expression language of filter/calc steps, and every kind of bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rainbow.errors import InvalidArgument
from rainbow.selection import ConstraintSelector, EvaluationError, Expression, get_selector


def calc(text: str) -> Expression:
    return Expression.parse(text, kind="calc", where="test")


def value(text: str, **names: object) -> object:
    return calc(text).evaluate(names)  # type: ignore[arg-type]


def reason(text: str, **names: object) -> str:
    with pytest.raises(EvaluationError) as info:
        calc(text).evaluate(names)  # type: ignore[arg-type]
    return info.value.reason


def steps(*items: dict) -> dict:
    return {"priorities": [{"steps": list(items)}]}


def refused(options: dict) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        get_selector("constraint", options)
    assert info.value.code == "INVALID_ARGUMENT"
    return info.value


# the language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("2 ** 10", 1024),
        ("-x + +x", 0),
        ("x * 0.5", 2.0),
        ("min(3, x, 9)", 3),
        ("max(3, x, 9)", 9),
        ("min('b', 'a')", "a"),
        ("abs(-x)", 4),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("1 < x <= 4", True),
        ("1 < x < 4", False),
        ("x == 4 and not (x != 4)", True),
        ("x > 10 or x < 5", True),
        ("'gpu' in 'has-gpu'", True),
        ("'tpu' not in 'has-gpu'", True),
        ("'a' < 'b'", True),
        ("1 == '1'", False),
        ("true and not false", True),
        ("x if x > 3 else 0", 4),
        ("'small' if x < 3 else 'big'", "big"),
        ("1e308 * 10", math.inf),
    ],
)
def test_evaluates(text: str, expected: object) -> None:
    assert value(text, x=4) == expected


def test_short_circuit_guards_missing_names() -> None:
    assert value("cpu_only or gpus_free > 0", cpu_only=True) is True
    assert value("has_gpu and gpus_free > 0", has_gpu=False) is False
    assert value("gpus_free if has_gpu else 0", has_gpu=False) == 0
    assert reason("cpu_only or gpus_free > 0", cpu_only=False) == "missing 'gpus_free'"


def test_names_reports_what_it_reads() -> None:
    assert calc("a + min(b, c) if d else e").names == {"a", "b", "c", "d", "e"}


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("x / y", {"x": 1, "y": 0}, "division by zero"),
        ("x // y", {"x": 1, "y": 0}, "division by zero"),
        ("x % y", {"x": 1, "y": 0.0}, "division by zero"),
        ("x > 0", {"x": "20"}, "wrong type"),
        ("x + 1", {"x": True}, "wrong type"),
        ("x * 3", {"x": "ab"}, "wrong type"),
        ("x + y", {"x": "a", "y": "b"}, "wrong type"),
        ("not x", {"x": 1}, "wrong type"),
        ("x and True", {"x": 1}, "wrong type"),
        ("1 if x else 2", {"x": "yes"}, "wrong type"),
        ("'a' in x", {"x": 3}, "wrong type"),
        ("min(x, 1)", {"x": "a"}, "wrong type"),
        ("abs(x)", {"x": "a"}, "wrong type"),
        ("round(x)", {"x": False}, "wrong type"),
        ("round(1.5, x)", {"x": 1.5}, "wrong type"),
        ("round(1.5, x)", {"x": 10_000}, "cannot evaluate"),
        ("round(x)", {"x": math.inf}, "number too large"),
        ("x ** y", {"x": 9, "y": 9**9}, "number too large"),
        ("x ** y", {"x": 2.0, "y": 5000}, "number too large"),
        ("x / 3", {"x": 10**400}, "number too large"),
        ("x * x", {"x": 2**1000}, "number too large"),
        ("y", {}, "missing 'y'"),
        ("x ** 0.5", {"x": -1}, "cannot evaluate"),
        ("x - x", {"x": math.inf}, "not a usable value"),
    ],
)
def test_evaluation_failures_are_reasons(text: str, names: dict, expected: str) -> None:
    assert expected in reason(text, **names)


def test_filter_must_give_a_boolean_per_cluster() -> None:
    condition = Expression.parse("up", kind="filter", where="test")
    assert condition.evaluate({"up": True}) is True
    with pytest.raises(EvaluationError, match="not a boolean"):
        condition.evaluate({"up": 1})


HOSTILE = [
    ({"x": 9, "y": 9**9}, {"x ** y": "number too large", "x * y": 9 * 9**9, "x ** y ** y": "number too large",
                           "x * x * x * x * x * x * x * x": 9**8}),
    ({"x": 10**300, "y": 10**300}, {"x ** y": "number too large", "x * y": "number too large",
                                     "x ** y ** y": "number too large",
                                     "x * x * x * x * x * x * x * x": "number too large"}),
    ({"x": "a" * 100_000, "y": 10**9}, {"x ** y": "wrong type", "x * y": "wrong type",
                                         "x ** y ** y": "number too large",
                                         "x * x * x * x * x * x * x * x": "wrong type"}),
]


@pytest.mark.parametrize(("names", "outcomes"), HOSTILE, ids=["big-power", "huge-numbers", "long-string"])
def test_hostile_values_are_refused_before_anything_huge_is_computed(names, outcomes) -> None:
    for text, expected in outcomes.items():
        if isinstance(expected, int):
            assert calc(text).evaluate(names) == expected
            continue
        with pytest.raises(EvaluationError) as error:
            calc(text).evaluate(names)
        assert error.value.reason.startswith(expected), (text, error.value.reason)


def test_expressions_compare_by_text() -> None:
    assert calc("a + 1") == calc(" a + 1 ")
    assert calc("a + 1") != calc("a + 2")
    assert len({calc("a"), calc("a")}) == 1


# bad input: refused at validation (server start or request), with the place named


def test_syntax_error() -> None:
    error = refused(steps({"filter": "nodes_free >"}))
    assert error.field == "priorities[0].steps[0].filter"
    assert str(error).startswith("priorities[0].steps[0].filter: invalid expression 'nodes_free >'")


@pytest.mark.parametrize(
    ("text", "hint"),
    [("a && b", "use 'and' / 'or'"), ("a || b", "use 'and' / 'or'"), ("!a", "use 'not'"), ("a = 1", "")],
)
def test_syntax_error_hints(text: str, hint: str) -> None:
    assert hint in str(refused(steps({"filter": text})))


def test_unknown_step() -> None:
    error = refused({"priorities": "- steps:\n  - filter: nodes_free > 0\n  - sort: nodes_free\n"})
    assert error.field == "priorities[0].steps[1]"
    assert "unknown step 'sort'" in str(error)
    assert "sort_descending" in str(error)


def test_unknown_select_method() -> None:
    error = refused(steps({"select": "best"}))
    assert error.field == "priorities[0].steps[0].select"
    assert "unknown select method 'best'" in str(error)
    assert "first, last, random" in str(error)


@pytest.mark.parametrize("text", ["build_cost", "x 1", "min(a, b)"])
def test_calc_without_equals(text: str) -> None:
    error = refused({"priorities": [{"steps": [{"filter": "a > 0"}, {"calc": text}]}]})
    assert str(error) == f'priorities[0].steps[1].calc: expected "<name>=<expression>", got {text!r}'
    assert error.field == "priorities[0].steps[1].calc"


@pytest.mark.parametrize(
    "text", ["=1", " = 1", "1x=1", "a b=1", "min=1", "if=1", "True=1", "true=1", "a.b=1"]
)
def test_calc_with_a_bad_name(text: str) -> None:
    assert "priorities[0].steps[0].calc" in str(refused(steps({"calc": text})))


@pytest.mark.parametrize("text", ["x=", "x=  ", "x=y=1", "x==1"])
def test_calc_with_a_bad_expression(text: str) -> None:
    refused(steps({"calc": text}))


@pytest.mark.parametrize(
    "text",
    ["x=1/0", "x=nodes_free/0", "x=nodes_free // (1 - 1)", "x=nodes_free % 0.0", "x=nodes_free / (2 * 0)"],
)
def test_division_by_zero_is_refused_when_constant(text: str) -> None:
    assert "division by zero" in str(refused(steps({"calc": text})))


@pytest.mark.parametrize(
    "text",
    ["x='a' * 3", "x=nodes_free + 'a'", "x=abs('a')", "x=-'a'", "x=round(x, 1.5)", "x=min(True, 2)"],
)
def test_wrong_type_constants_are_refused(text: str) -> None:
    assert "wrong type" in str(refused(steps({"calc": text})))


@pytest.mark.parametrize(
    "text",
    ["not 1", "1 < 'a'", "x > 0 and 3", "'a' in 3", "(1 if 2 else 3) > 0", "nodes_free < None"],
)
def test_wrong_type_constants_in_filters_are_refused(text: str) -> None:
    refused(steps({"filter": text}))


@pytest.mark.parametrize("text", ["nodes_free - 1", "max(a, b)", "1", "'yes'", "-x", "round(x)"])
def test_filters_must_be_conditions(text: str) -> None:
    assert "a filter must be a condition" in str(refused(steps({"filter": text})))


def test_bare_name_filter_is_checked_per_cluster() -> None:
    selector = get_selector("constraint", steps({"filter": "up"}))
    states = {"a": {"up": True}, "b": {"up": 1}, "c": {"up": False}}
    selection = selector.select(list(states), states, {})
    assert selection.clusters == ["a"]
    assert any("b: filter result is number 1, not a boolean" in line for line in selection.trace)


def test_filter_that_is_a_bare_name_with_a_number_parameter_is_refused() -> None:
    selector = get_selector("constraint", steps({"filter": "flag"}))
    with pytest.raises(InvalidArgument, match="a filter must give a boolean"):
        selector.select(["a"], {}, {"flag": 1})


@pytest.mark.parametrize(
    "text",
    [
        "9**9**9",
        "2 ** 100000",
        "10 ** 400 / 3",
        "2.0 ** 5000",
        "(10 ** 300) * (10 ** 300) > 0",
    ],
)
def test_huge_numbers_are_refused(text: str) -> None:
    kind = "filter" if ">" in text else "calc"
    source = text if kind == "filter" else f"x={text}"
    assert "number too large" in str(refused(steps({kind: source})))


TARGET = Path("/tmp/rainbow-selection-pwned")

CODE_EXECUTION = [
    "__import__('os').system('touch /tmp/rainbow-selection-pwned')",
    "__import__('os')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__ == 1",
    "x.__globals__",
    "getattr(x, '__class__')",
    "open('/tmp/rainbow-selection-pwned', 'w')",
    "eval('1')",
    "exec('import os')",
    "compile('1', 'x', 'eval')",
    "globals()",
    "locals()",
    "vars()",
    "type(x)",
    "int('1')",
    "str(1)",
    "rand()",
    "[c for c in ().__class__.__mro__]",
    "{x: 1}",
    "(lambda: 1)()",
    "(lambda: 1)",
    "import os",
    "os.system('id')",
    "x[0]",
    "x[0:2]",
    "[1, 2]",
    "(1, 2)",
    "{1, 2}",
    "f'{x}'",
    "(y := 1)",
    "x is None",
    "1 ^ 2",
    "1 << 100000",
    "~x",
    "*x",
    "min(*x)",
    "max(1, 2, key=abs)",
    "min",
    "abs",
    "None",
    "b'x'",
    "1j",
    "...",
    "x; y",
    "await x",
    "yield x",
    "x\x00",
    "\\\\",
    "'a' * 100000000",
    "'a' " * 400,
    "-" * 70 + "x",
    "+".join(["1"] * 80),
    "(" * 250 + "x" + ")" * 250,
]


@pytest.mark.parametrize("text", CODE_EXECUTION)
@pytest.mark.parametrize("kind", ["filter", "calc"])
def test_no_code_execution(text: str, kind: str) -> None:
    source = text if kind == "filter" else f"x={text}"
    error = refused(steps({kind: source}))
    assert error.field == f"priorities[0].steps[0].{kind}"
    assert not TARGET.exists()


def test_state_names_cannot_reach_python() -> None:
    selector = get_selector("constraint", steps({"filter": "__builtins__ == 1 or __class__ == 1"}))
    states = {"a": {"__builtins__": 1}, "b": {}}
    assert selector.select(["a", "b"], states, {}).clusters == ["a"]


def test_expression_length_is_bounded() -> None:
    assert "longer than" in str(refused(steps({"filter": "x > " + "1" * 1000})))


@pytest.mark.parametrize(
    ("options", "field", "fragment"),
    [
        ({"priorities": ""}, "priorities", "empty"),
        ({"priorities": "   "}, "priorities", "empty"),
        ({"priorities": "- [unclosed"}, "priorities", "not valid YAML"),
        ({"priorities": "a: b"}, "priorities", "expected a list of priorities, got a mapping"),
        ({"priorities": "just text"}, "priorities", "expected a list of priorities"),
        ({"priorities": "[]"}, "priorities", "empty"),
        ({"priorities": 5}, "priorities", "expected a list of priorities, got int"),
        ({"priorities": None}, "priorities", "expected a list"),
        ({"priorities": ["x"]}, "priorities[0]", "expected a mapping"),
        ({"priorities": [{"filter": "x > 0"}]}, "priorities[0]", "steps go in the 'steps' list"),
        ({"priorities": [{"steps": "x"}]}, "priorities[0].steps", "expected a list of steps"),
        ({"priorities": [{"steps": []}]}, "priorities[0].steps", "at least one step"),
        (
            {"priorities": [{"priority": "1", "steps": [{"select": "first"}]}]},
            "priorities[0].priority",
            "integer",
        ),
        (
            {"priorities": [{"priority": True, "steps": [{"select": "first"}]}]},
            "priorities[0].priority",
            "integer",
        ),
        (
            {
                "priorities": [
                    {"priority": 1, "steps": [{"select": "first"}]},
                    {"steps": [{"select": "last"}]},
                ]
            },
            "priorities[1].priority",
            "every priority",
        ),
        (
            {
                "priorities": "- {priority: 1, steps: [{select: first}]}\n"
                "- {priority: 1, steps: [{select: last}]}"
            },
            "priorities[1].priority",
            "already used by priorities[0]",
        ),
        ({"priorities": [{"steps": ["filter: x > 0"]}]}, "priorities[0].steps[0]", "exactly one of"),
        ({"priorities": [{"steps": [{}]}]}, "priorities[0].steps[0]", "exactly one of"),
        (
            {"priorities": [{"steps": [{"filter": "x > 0", "select": "first"}]}]},
            "priorities[0].steps[0]",
            "got keys filter, select",
        ),
        (
            {"priorities": [{"steps": [{"filter": True}]}]},
            "priorities[0].steps[0].filter",
            "expected a string",
        ),
        ({"priorities": [{"steps": [{"filter": ""}]}]}, "priorities[0].steps[0].filter", "empty"),
        (
            {"priorities": [{"steps": [{"sort_ascending": " "}]}]},
            "priorities[0].steps[0].sort_ascending",
            "name",
        ),
        ({"priorities": [{"steps": [{"select": 1}]}]}, "priorities[0].steps[0].select", "expected a string"),
        (
            {"priorities": [{"steps": [{"select": "first"}, {"filter": "x > 0"}]}]},
            "priorities[0].steps[0].select",
            "must be the last step",
        ),
        ({"priorities": [{"steps": [{"select": "first"}]}] * 65}, "priorities", "more than"),
        ({"priorities": [{"steps": [{"sort_ascending": "x"}] * 65}]}, "priorities[0].steps", "more than"),
        ({"priorities": "- " * 10_000}, "priorities", "longer than"),
        ({"priorities": "[" * 5000}, "priorities", "nested more than 16 levels"),
        ({"priorities": "[" * 10}, "priorities", "not valid YAML"),
    ],
)
def test_bad_options(options: dict, field: str, fragment: str) -> None:
    error = refused(options)
    assert error.field == field
    assert str(error).startswith(field)
    assert fragment in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 8000 + "]" * 8000,
        "- " * 8000 + "x",
        "- " * 4000 + "x",
        "{a: " * 3000 + "1" + "}" * 3000,
        "['[" + "[" * 30 + "]' , " + "[" * 17 + "]" * 17 + "]",
    ],
    ids=["flow-sequences", "block-sequences-too-long", "block-sequences", "flow-mappings", "quoted-brackets"],
)
def test_deeply_nested_yaml_is_refused(text: str) -> None:
    assert refused({"priorities": text}).field == "priorities"


def test_brackets_inside_quotes_do_not_count_as_nesting() -> None:
    text = (
        "- steps: [{filter: \"name == '[[[[[[[[[[[[[[[[[[[['\"}, {filter: 'a == \"{{{{{{{{{{{{{{{{{{{{\"'}]"
    )
    selector = get_selector("constraint", {"priorities": text})
    assert selector.select(["x"], {"x": {"name": "[" * 20, "a": "{" * 20}}, {}).clusters == ["x"]


def test_yaml_aliases_are_harmless() -> None:
    bomb = (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: [*b, *b, *b, *b, *b]"
    )
    refused({"priorities": bomb})
    refused({"priorities": "- &p {steps: [{filter: *p}]}"})


def test_priorities_string_with_python_tags_is_not_executed() -> None:
    refused({"priorities": "!!python/object/apply:os.system ['touch /tmp/rainbow-selection-pwned']"})
    assert not TARGET.exists()


# job parameters: checked when a request is selected


def test_division_by_zero_from_a_parameter_is_refused_at_request_time() -> None:
    selector = get_selector("constraint", steps({"calc": "x=nodes_free / seconds_per_gb"}))
    with pytest.raises(InvalidArgument) as info:
        selector.select(["a"], {"a": {"nodes_free": 1}}, {"seconds_per_gb": 0})
    message = str(info.value)
    assert message.startswith("priorities[0].steps[0].calc: division by zero")
    assert "seconds_per_gb=0" in message
    assert selector.select(["a"], {"a": {"nodes_free": 1}}, {"seconds_per_gb": 2}).clusters == ["a"]
    with pytest.raises(InvalidArgument):
        selector.check_parameters({"seconds_per_gb": 0.0})


def test_wrong_type_parameter_is_refused_at_request_time() -> None:
    selector = get_selector("constraint", steps({"calc": "x=cost * seconds_per_gb"}))
    with pytest.raises(InvalidArgument, match=r"wrong type.*seconds_per_gb='fast'"):
        selector.select(["a"], {"a": {"cost": 1}}, {"seconds_per_gb": "fast"})


def test_parameters_in_priorities_never_tried_are_still_checked() -> None:
    selector = get_selector(
        "constraint",
        {"priorities": [{"steps": [{"select": "first"}]}, {"steps": [{"calc": "x=1 / p"}]}]},
    )
    with pytest.raises(InvalidArgument, match=r"priorities\[1\]\.steps\[0\]\.calc"):
        selector.select(["a"], {}, {"p": 0})


def test_calc_results_shadow_parameters_in_the_check() -> None:
    selector = get_selector(
        "constraint",
        steps({"calc": "p=nodes_free"}, {"calc": "q=1 / p"}),
    )
    assert isinstance(selector, ConstraintSelector)
    states = {"a": {"nodes_free": 0}, "b": {"nodes_free": 2}}
    selection = selector.select(["a", "b"], states, {"p": 0})
    assert selection.clusters == ["b"]
    assert any("a: division by zero" in line for line in selection.trace)


def test_division_by_zero_from_state_drops_only_that_cluster() -> None:
    selector = get_selector(
        "constraint", steps({"calc": "share=cost / nodes_free"}, {"sort_ascending": "share"})
    )
    states = {
        "a": {"cost": 4, "nodes_free": 0},
        "b": {"cost": 4, "nodes_free": 2},
        "c": {"cost": 1, "nodes_free": 1},
    }
    selection = selector.select(list(states), states, {})
    assert selection.clusters == ["c", "b"]
    assert any("a: division by zero" in line for line in selection.trace)
    only_a = selector.select(["a"], states, {})
    assert only_a.clusters == []
    assert only_a.reason == (
        "constraint: no cluster passed: priority 1 step 'calc: share=cost / nodes_free' "
        "removed the last of 1 candidates (a: division by zero)"
    )


def test_wrong_type_state_drops_only_that_cluster() -> None:
    selector = get_selector("constraint", steps({"filter": "nodes_free > 0"}))
    states = {"a": {"nodes_free": "20"}, "b": {"nodes_free": 3}, "c": {"nodes_free": True}}
    selection = selector.select(list(states), states, {})
    assert selection.clusters == ["b"]
    trace = "\n".join(selection.trace)
    assert "a: wrong type: '>' needs two numbers or two strings, got string '20' and number 0" in trace
    assert "c: wrong type" in trace
