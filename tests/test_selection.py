"""Selection algorithms: random, constraint (each step kind, priority fallback), presets, overrides."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest
import yaml

from rainbow.errors import InvalidArgument
from rainbow.selection import (
    SELECTION_ALGORITHMS,
    ConstraintSelector,
    RandomSelector,
    Selection,
    get_selector,
    parameters_from_jobspec,
    selector_for_request,
)
from rainbow.selection.presets import CHEAPEST, LEAST_LOADED

ROOT = Path(__file__).resolve().parents[1]

# Verbatim from the examples users have: rainbow-selection-config.yaml (the selection part),
# cluster-state.json and jobspec-constraint.yaml.
EXAMPLE_CONFIG = """\
scheduler:
    algorithms:
        selection:
            name: constraint
            options:\x20
                # This is a list of priorities. If the first returns no matches we try the second, etc.
                priorities: |
                  - priority: 1\x20
                    steps:
                    - filter: "nodes_free > 0"
                    - calc: "build_cost=(cost_per_node_hour * (memory_per_node * seconds_per_gb)/60/60)"
                    - sort_descending: build_cost\x20
                    - select: random
                  - priority: 2
                    steps:
                    - filter: "nodes_free > 0"
                    - calc: "memory_min=min(100, memory_per_node - 100)"
                    - calc: "build_cost=(cost_per_node_hour * (memory_min * seconds_per_gb)/60/60)"
                    - sort_descending: build_cost\x20
                    - select: random
"""
EXAMPLE_STATE = """\
{
    "cost_per_node_hour": 3,
    "nodes_free": 20,
    "memory_per_node": 200
}
"""
EXAMPLE_JOBSPEC = """\
version: 1
resources:
  spack:
    replicas: 2
    type: node
    with:
    - count: 2
      type: core

tasks:
  - command: [ior]
    resources: spack

attributes:
  parameter:
    seconds_per_gb: 0.4
"""


def constraint(*priorities: list[dict], numbered: bool = False) -> ConstraintSelector:
    items = []
    for number, steps in enumerate(priorities, start=1):
        item: dict = {"steps": steps}
        if numbered:
            item["priority"] = number
        items.append(item)
    selector = get_selector("constraint", {"priorities": items})
    assert isinstance(selector, ConstraintSelector)
    return selector


STATES = {
    "red": {"nodes_free": 4, "cost_per_node_hour": 3, "memory_per_node": 200},
    "green": {"nodes_free": 0, "cost_per_node_hour": 1, "memory_per_node": 100},
    "blue": {"nodes_free": 10, "cost_per_node_hour": 5, "memory_per_node": 400},
    "grey": {"cost_per_node_hour": 2},
}
NAMES = ["red", "green", "blue", "grey"]


# get_selector and the registry


def test_registry_names() -> None:
    assert set(SELECTION_ALGORITHMS) == {"random", "constraint", "cheapest", "least-loaded"}
    for name, cls in SELECTION_ALGORITHMS.items():
        assert cls.name == name


@pytest.mark.parametrize("name", [None, "", "  ", "random", "RANDOM", " Random "])
def test_default_and_normalized_names_are_random(name: str | None) -> None:
    assert isinstance(get_selector(name), RandomSelector)


def test_name_aliases() -> None:
    assert get_selector("least_loaded").name == "least-loaded"
    assert get_selector("Least-Loaded").name == "least-loaded"


def test_unknown_algorithm_lists_known_names() -> None:
    with pytest.raises(InvalidArgument) as info:
        get_selector("fastest")
    message = str(info.value)
    assert "'fastest'" in message
    for name in SELECTION_ALGORITHMS:
        assert name in message
    assert info.value.field == "select_algorithm"
    assert info.value.code == "INVALID_ARGUMENT"


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(InvalidArgument, match="mapping"):
        get_selector("constraint", ["priorities"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["random", "cheapest", "least-loaded"])
def test_algorithms_without_options_refuse_options(name: str) -> None:
    with pytest.raises(InvalidArgument, match="does not take option"):
        get_selector(name, {"priorities": "- steps: [{select: first}]"})


def test_constraint_needs_priorities() -> None:
    with pytest.raises(InvalidArgument, match="needs the option 'priorities'"):
        get_selector("constraint")
    with pytest.raises(InvalidArgument, match="does not take option"):
        get_selector("constraint", {"priorities": "- steps: [{select: first}]", "prioritise": "x"})


# random


def test_random_shuffles_and_keeps_everyone() -> None:
    selector = get_selector("random")
    seen = set()
    for seed in range(40):
        selection = selector.select(NAMES, STATES, {}, rng=random.Random(seed))
        assert sorted(selection.clusters) == sorted(NAMES)
        assert selection.cluster == selection.clusters[0]
        assert selection.reason == f"random: picked {selection.clusters[0]!r} among 4"
        assert selection.algorithm == "random"
        assert selection.candidates == tuple(NAMES)
        seen.add(selection.clusters[0])
    assert seen == set(NAMES)


def test_random_select_many_draws_each_job_uniformly_and_shares_equal_selections() -> None:
    selector = get_selector("random")
    selections = selector.select_many([*NAMES, NAMES[0]], STATES, {}, 4000, rng=random.Random(3))
    assert len(selections) == 4000
    counts = {name: sum(1 for s in selections if s.cluster == name) for name in NAMES}
    # 1,000 expected each; 850 is more than 5 standard deviations (27) away.
    assert all(850 < count < 1150 for count in counts.values()), counts
    alone = selector.select(NAMES, STATES, {}, rng=random.Random(0))
    for selection in selections:
        assert sorted(selection.clusters) == sorted(alone.clusters)
        assert selection.reason == f"random: picked {selection.cluster!r} among 4"
        assert (selection.algorithm, selection.candidates, selection.trace) == ("random", tuple(NAMES),
                                                                             (selection.reason,))
    assert len({id(s) for s in selections}) == len(NAMES)


def test_select_many_of_any_selector_is_one_select_per_job() -> None:
    selector = get_selector("least-loaded")
    assert not selector.draws_many
    many = selector.select_many(NAMES, STATES, {}, 3, rng=random.Random(1))
    assert [s.clusters for s in many] == [selector.select(NAMES, STATES, {}).clusters] * 3
    assert get_selector("random").select_many(NAMES, STATES, {}, 0) == []
    assert [s.clusters for s in get_selector("random").select_many([], STATES, {}, 2)] == [[], []]


def test_random_is_reproducible_with_rng_and_ignores_state() -> None:
    selector = get_selector("random")
    first = selector.select(NAMES, {}, {}, rng=random.Random(7))
    again = selector.select(NAMES, STATES, {"x": 1}, rng=random.Random(7))
    assert first.clusters == again.clusters


def test_random_without_rng_and_duplicates() -> None:
    selection = get_selector("random").select(["a", "b", "a"], {}, None)
    assert sorted(selection.clusters) == ["a", "b"]


def test_no_candidates() -> None:
    for name in SELECTION_ALGORITHMS:
        options = {"priorities": "- steps: [{select: first}]"} if name == "constraint" else None
        selection = get_selector(name, options).select([], STATES, {})
        assert selection.clusters == []
        assert selection.cluster is None
        assert selection.reason == f"{name}: no candidate clusters"


# constraint: each step kind


def test_filter_keeps_clusters_that_pass() -> None:
    selection = constraint([{"filter": "nodes_free > 0"}]).select(NAMES, STATES, {})
    assert selection.clusters == ["red", "blue"]
    assert any("green: condition false" in line for line in selection.trace)
    assert any("grey: missing 'nodes_free'" in line for line in selection.trace)


def test_filter_without_select_defaults_to_first() -> None:
    selection = constraint([{"filter": "nodes_free >= 0"}]).select(NAMES, STATES, {})
    assert selection.clusters == ["red", "green", "blue"]
    assert "select first among 3" in selection.reason


def test_filter_on_strings_and_booleans() -> None:
    states = {
        "a": {"arch": "x86_64", "gpu": "a100", "up": True},
        "b": {"arch": "aarch64", "gpu": "none", "up": True},
        "c": {"arch": "x86_64", "gpu": "h100", "up": False},
    }
    selection = constraint([{"filter": "up and arch == 'x86_64'"}]).select(list(states), states, {})
    assert selection.clusters == ["a"]
    selection = constraint([{"filter": "'100' in gpu"}]).select(list(states), states, {})
    assert selection.clusters == ["a", "c"]
    selection = constraint([{"filter": "not up or gpu != 'none'"}]).select(list(states), states, {})
    assert selection.clusters == ["a", "c"]
    selection = constraint([{"filter": "up == true"}]).select(list(states), states, {})
    assert selection.clusters == ["a", "b"]


def test_calc_then_sort_descending_largest_first() -> None:
    selector = constraint(
        [{"calc": "capacity=nodes_free * memory_per_node"}, {"sort_descending": "capacity"}]
    )
    selection = selector.select(NAMES, STATES, {})
    assert selection.clusters == ["blue", "red", "green"]
    assert "grey: missing 'nodes_free'" in selection.trace[0]


def test_sort_ascending_smallest_first() -> None:
    selection = constraint([{"sort_ascending": "cost_per_node_hour"}]).select(NAMES, STATES, {})
    assert selection.clusters == ["green", "grey", "red", "blue"]
    assert "sort_ascending cost_per_node_hour" in selection.reason


def test_sort_missing_key_goes_last_in_both_directions() -> None:
    for kind, expected in [
        ("sort_ascending", ["green", "red", "blue", "grey"]),
        ("sort_descending", ["blue", "red", "green", "grey"]),
    ]:
        selection = constraint([{kind: "nodes_free"}]).select(NAMES, STATES, {})
        assert selection.clusters == expected


def test_sort_is_stable_and_later_sort_is_primary() -> None:
    states = {
        "a": {"free": 2, "cost": 1},
        "b": {"free": 1, "cost": 1},
        "c": {"free": 3, "cost": 2},
        "d": {"free": 3, "cost": 1},
    }
    names = list(states)
    selection = constraint([{"sort_ascending": "cost"}]).select(names, states, {})
    assert selection.clusters == ["a", "b", "d", "c"]
    selection = constraint([{"sort_descending": "cost"}]).select(names, states, {})
    assert selection.clusters == ["c", "a", "b", "d"]
    selection = constraint([{"sort_descending": "free"}, {"sort_ascending": "cost"}]).select(
        names, states, {}
    )
    assert selection.clusters == ["d", "a", "b", "c"]


def test_sort_numbers_before_strings_and_unusable_values_last() -> None:
    states = {
        "a": {"k": "x"},
        "b": {"k": 2},
        "c": {"k": None},
        "d": {"k": True},
        "e": {"k": "y"},
        "f": {"k": float("nan")},
        "g": {"k": [1]},
    }
    names = list(states)
    ascending = constraint([{"sort_ascending": "k"}]).select(names, states, {})
    assert ascending.clusters == ["d", "b", "a", "e", "c", "f", "g"]
    descending = constraint([{"sort_descending": "k"}]).select(names, states, {})
    assert descending.clusters == ["b", "d", "e", "a", "c", "f", "g"]


def test_select_first_last_random() -> None:
    base = [{"filter": "nodes_free > 0"}, {"sort_descending": "nodes_free"}]
    first = constraint([*base, {"select": "first"}]).select(NAMES, STATES, {})
    assert first.clusters == ["blue", "red"]
    last = constraint([*base, {"select": "last"}]).select(NAMES, STATES, {})
    assert last.clusters == ["red", "blue"]
    assert "select last among 2" in last.reason
    selector = constraint([{"sort_ascending": "cost_per_node_hour"}, {"select": "random"}])
    picks = set()
    for seed in range(30):
        selection = selector.select(NAMES, STATES, {}, rng=random.Random(seed))
        picks.add(selection.clusters[0])
        rest = [cluster for cluster in ["green", "grey", "red", "blue"] if cluster != selection.clusters[0]]
        assert selection.clusters[1:] == rest
    assert picks == set(NAMES)
    again = [selector.select(NAMES, STATES, {}, rng=random.Random(3)).clusters for _ in range(3)]
    assert again[0] == again[1] == again[2]


def test_calc_results_visible_to_later_steps_and_shadow_state() -> None:
    selector = constraint(
        [
            {"calc": "nodes_free=nodes_free - 4"},
            {"calc": "spare=max(nodes_free, 0)"},
            {"filter": "spare > 0"},
        ]
    )
    selection = selector.select(NAMES, STATES, {})
    assert selection.clusters == ["blue"]


def test_calc_results_do_not_leak_between_priorities() -> None:
    selector = constraint(
        [{"calc": "x=1"}, {"filter": "x > 5"}],
        [{"filter": "x > 0"}],
    )
    selection = selector.select(["red"], STATES, {})
    assert selection.clusters == []
    assert "priority 2 step 'filter: x > 0'" in selection.reason
    assert "missing 'x'" in selection.reason


# priorities


def test_priority_fallback_first_that_leaves_a_cluster_decides() -> None:
    selector = constraint(
        [{"filter": "nodes_free > 100"}, {"select": "first"}],
        [{"filter": "nodes_free > 5"}, {"select": "first"}],
        [{"select": "first"}],
        numbered=True,
    )
    selection = selector.select(NAMES, STATES, {})
    assert selection.clusters == ["blue"]
    assert selection.reason.startswith("constraint: priority 2 picked 'blue' (select first among 1)")
    assert (
        "after priority 1 step 'filter: nodes_free > 100' removed the last of 4 candidates"
        in selection.reason
    )
    only_first = selector.select(["red", "blue"], {"blue": {"nodes_free": 500}}, {})
    assert only_first.clusters == ["blue"]
    assert "priority 1 picked" in only_first.reason


def test_priority_numbers_order_the_priorities() -> None:
    options = {
        "priorities": [
            {"priority": 2, "steps": [{"sort_ascending": "nodes_free"}]},
            {"priority": 1, "steps": [{"filter": "cost_per_node_hour > 4"}]},
        ]
    }
    selection = get_selector("constraint", options).select(NAMES, STATES, {})
    assert selection.clusters == ["blue"]
    assert "priority 1 picked" in selection.reason
    selection = get_selector("constraint", options).select(["red", "green"], STATES, {})
    assert selection.clusters == ["green", "red"]
    assert "priority 2 picked" in selection.reason


def test_nobody_passes_names_algorithm_and_last_step() -> None:
    selector = constraint(
        [{"filter": "nodes_free > 100"}],
        [{"calc": "c=cost_per_node_hour / memory_per_node"}, {"filter": "nodes_free > 50"}],
        numbered=True,
    )
    selection = selector.select(["red", "green", "grey"], STATES, {})
    assert selection.clusters == []
    assert selection.cluster is None
    assert selection.reason.startswith(
        "constraint: no cluster passed: "
        "priority 2 step 'filter: nodes_free > 50' removed the last of 3 candidates"
    )
    assert "red: condition false" in selection.reason
    assert len(selection.trace) == 3
    assert "grey: missing 'memory_per_node'" in selection.trace[1]


def test_reason_lists_at_most_a_few_clusters() -> None:
    states = {f"c{i}": {"n": 0} for i in range(9)}
    selection = constraint([{"filter": "n > 0"}]).select(list(states), states, {})
    assert "and 4 more" in selection.reason


def test_satisfy_only_list_is_choice_then_remaining_in_order() -> None:
    selector = constraint(
        [{"filter": "cost_per_node_hour < 5"}, {"sort_ascending": "cost_per_node_hour"}, {"select": "last"}]
    )
    selection = selector.select(NAMES, STATES, {})
    assert selection.clusters == ["red", "green", "grey"]


def test_candidate_without_any_state_is_skipped_not_an_error() -> None:
    selection = constraint([{"filter": "nodes_free > 0"}]).select(["new", "red"], {"red": STATES["red"]}, {})
    assert selection.clusters == ["red"]
    selection = constraint([{"filter": "nodes_free > 0"}]).select(["new"], {"new": "junk"}, {})  # type: ignore[dict-item]
    assert selection.clusters == []
    selection = constraint([{"sort_ascending": "nodes_free"}]).select(["new", "red"], None, None)  # type: ignore[arg-type]
    assert selection.clusters == ["new", "red"]


def test_duplicate_candidates_count_once() -> None:
    selection = constraint([{"select": "first"}]).select(["red", "red", "blue"], STATES, {})
    assert selection.clusters == ["red", "blue"]
    assert selection.candidates == ("red", "blue")


# the example config, cluster state and jobspec


def _example_selector() -> ConstraintSelector:
    config = yaml.safe_load(EXAMPLE_CONFIG)
    selection = config["scheduler"]["algorithms"]["selection"]
    selector = get_selector(selection["name"], selection["options"])
    assert isinstance(selector, ConstraintSelector)
    return selector


def test_example_config_state_and_jobspec() -> None:
    selector = _example_selector()
    assert [priority.label for priority in selector.priorities] == ["1", "2"]
    example_state = json.loads(EXAMPLE_STATE)
    jobspec = yaml.safe_load(EXAMPLE_JOBSPEC)
    parameters = parameters_from_jobspec(jobspec)
    assert parameters == {"seconds_per_gb": 0.4}
    states = {
        "keebler": example_state,  # 3 * (200 * 0.4) / 60 / 60 = 0.0667
        "cheap": {
            "cost_per_node_hour": 1,
            "nodes_free": 2,
            "memory_per_node": 1000,
        },  # 1 * 400 / 3600 = 0.111
        "pricey": {
            "cost_per_node_hour": 5,
            "nodes_free": 8,
            "memory_per_node": 100,
        },  # 5 * 40 / 3600 = 0.0556
        "full": {"cost_per_node_hour": 9, "nodes_free": 0, "memory_per_node": 900},
    }
    build_cost = {
        name: state["cost_per_node_hour"] * (state["memory_per_node"] * 0.4) / 60 / 60
        for name, state in states.items()
    }
    assert build_cost["keebler"] == pytest.approx(3 * 80 / 3600)
    descending = ["cheap", "keebler", "pricey"]
    assert sorted(descending, key=build_cost.__getitem__, reverse=True) == descending
    picks = set()
    for seed in range(20):
        selection = selector.select(list(states), states, parameters, rng=random.Random(seed))
        assert sorted(selection.clusters) == sorted(descending)
        assert selection.clusters[1:] == [name for name in descending if name != selection.clusters[0]]
        assert selection.reason == (
            f"constraint: priority 1 picked {selection.clusters[0]!r} "
            "(sort_descending build_cost, select random among 3)"
        )
        picks.add(selection.clusters[0])
    assert picks == set(descending)
    trace = "\n".join(selection.trace)
    assert "full: condition false" in trace


def test_example_priority_two_formula() -> None:
    selector = _example_selector()
    priority_two = selector.priorities[1]
    one = get_selector(
        "constraint",
        {
            "priorities": [
                {
                    "steps": [
                        {priority_two.steps[0].kind: priority_two.steps[0].value},
                        {"calc": priority_two.steps[1].value},
                        {"calc": priority_two.steps[2].value},
                        {"sort_descending": "build_cost"},
                    ]
                }
            ]
        },
    )
    states = {
        "a": {"nodes_free": 1, "cost_per_node_hour": 3, "memory_per_node": 150},  # min(100, 50) -> 50
        "b": {"nodes_free": 1, "cost_per_node_hour": 1, "memory_per_node": 400},
    }  # min(100, 300) -> 100
    # a: 3 * 50 * 0.4 / 3600 = 0.0167; b: 1 * 100 * 0.4 / 3600 = 0.0111
    assert one.select(["b", "a"], states, {"seconds_per_gb": 0.4}).clusters == ["a", "b"]


def test_example_priorities_as_string_or_list_are_equal() -> None:
    text = "- priority: 1\n  steps:\n  - filter: nodes_free > 0\n  - select: random\n"
    from_text = get_selector("constraint", {"priorities": text})
    from_list = get_selector("constraint", {"priorities": yaml.safe_load(text)})
    from_json = get_selector("constraint", {"priorities": json.dumps(yaml.safe_load(text))})
    assert from_text.priorities == from_list.priorities == from_json.priorities


# parameters and namespace precedence


def test_parameters_are_visible_and_win_over_state() -> None:
    selector = constraint([{"filter": "nodes_free >= wanted"}])
    assert selector.select(NAMES, STATES, {"wanted": 5}).clusters == ["blue"]
    states = {"a": {"wanted": 100, "nodes_free": 10}}
    assert selector.select(["a"], states, {"wanted": 5}).clusters == ["a"]


def test_nonscalar_parameters_and_state_values_are_absent() -> None:
    selector = constraint([{"filter": "x > 0"}])
    states = {"a": {"x": 1}, "b": {"x": None}, "c": {"x": {"nested": 1}}}
    assert selector.select(list(states), states, {"x": [1, 2]}).clusters == ["a"]


def test_parameters_from_jobspec_tolerates_shapes() -> None:
    assert parameters_from_jobspec(None) == {}
    assert parameters_from_jobspec({"attributes": None}) == {}
    assert parameters_from_jobspec({"attributes": {"parameter": ["x"]}}) == {}
    assert parameters_from_jobspec({"attributes": {"parameter": {"a": 1}}}) == {"a": 1}


# presets


def test_cheapest_prefers_free_nodes_then_falls_back() -> None:
    selector = get_selector("cheapest")
    selection = selector.select(NAMES, STATES, {})
    assert selection.clusters == ["red", "blue"]
    assert selection.reason.startswith("cheapest: priority 1 picked 'red'")
    fallback = selector.select(["green", "grey"], STATES, {})
    assert fallback.clusters == ["green", "grey"]
    assert "priority 2 picked 'green'" in fallback.reason


def test_least_loaded_most_free_nodes_first() -> None:
    selection = get_selector("least-loaded").select(NAMES, STATES, {})
    assert selection.clusters == ["blue", "red", "green", "grey"]


def _docs_yaml_after(heading: str) -> object:
    text = (ROOT / "docs" / "algorithms.md").read_text()
    start = text.index(heading)
    block = text.index("```yaml", start) + len("```yaml")
    return yaml.safe_load(text[block : text.index("```", block)])


def test_docs_write_out_the_presets() -> None:
    assert _docs_yaml_after("### cheapest") == {"priorities": yaml.safe_load(CHEAPEST)}
    assert _docs_yaml_after("### least-loaded") == {"priorities": yaml.safe_load(LEAST_LOADED)}


# per-request override


def test_request_without_algorithm_or_options_uses_the_server_selector() -> None:
    default = get_selector("constraint", {"priorities": "- steps: [{sort_ascending: cost_per_node_hour}]"})
    assert selector_for_request(default, "", {}) is default
    assert selector_for_request(default, None, None) is default


def test_request_options_replace_server_options_for_the_same_algorithm() -> None:
    default = get_selector("constraint", {"priorities": "- steps: [{sort_ascending: cost_per_node_hour}]"})
    override = {"priorities": "- steps: [{sort_descending: cost_per_node_hour}]"}
    for name in ("", "constraint"):
        selector = selector_for_request(default, name, override)
        assert selector.select(NAMES, STATES, {}).clusters[0] == "blue"
    assert selector_for_request(default, "constraint", {}).select(NAMES, STATES, {}).clusters[0] == "green"


def test_request_selectors_are_reused_for_the_same_options() -> None:
    default = get_selector("random")
    options = {"priorities": "- steps: [{sort_descending: nodes_free}]"}
    first = selector_for_request(default, "constraint", options)
    assert selector_for_request(default, "constraint", dict(options)) is first
    assert selector_for_request(default, "least-loaded", None) is selector_for_request(
        default, "least_loaded", {}
    )


def test_request_algorithm_replaces_server_algorithm() -> None:
    default = get_selector("constraint", {"priorities": "- steps: [{sort_ascending: cost_per_node_hour}]"})
    assert isinstance(selector_for_request(default, "random", {}), RandomSelector)
    assert selector_for_request(default, "least-loaded", None).name == "least-loaded"
    with pytest.raises(InvalidArgument, match="does not take option"):
        selector_for_request(default, "random", {"priorities": "- steps: [{select: first}]"})
    random_default = get_selector("random")
    with pytest.raises(InvalidArgument, match="needs the option 'priorities'"):
        selector_for_request(random_default, "constraint", {})
    with pytest.raises(InvalidArgument, match="unknown selection algorithm"):
        selector_for_request(random_default, "nope", {})
    with pytest.raises(InvalidArgument, match=r"priorities\[0\]\.steps\[0\]"):
        selector_for_request(default, "", {"priorities": "- steps: [{filter: 'x >'}]"})


# sharing


def test_selection_is_frozen() -> None:
    selection = Selection(["a"], "why")
    with pytest.raises(AttributeError):
        selection.reason = "other"  # type: ignore[misc]


def test_one_selector_many_threads() -> None:
    selector = constraint(
        [
            {"calc": "score=nodes_free * cost_per_node_hour"},
            {"filter": "score >= x"},
            {"sort_descending": "score"},
        ]
    )
    expected = {x: selector.select(NAMES, STATES, {"x": x}).clusters for x in range(0, 60, 5)}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(30):
                for x, clusters in expected.items():
                    assert selector.select(NAMES, STATES, {"x": x}).clusters == clusters
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert expected[0] == ["blue", "red", "green"]
