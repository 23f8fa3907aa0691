"""Placement's decision over plain data: match results, cluster states and a selector in, a Placement out."""

from __future__ import annotations

import random

import pytest

from rainbow.errors import FailedPrecondition
from rainbow.graph import MatchResult
from rainbow.jobspec import parse_jobspec
from rainbow.scheduler.placement import Placement, select_cluster
from rainbow.scheduler.submission import PendingSubmit, SubmitOutcome, submit_decision
from rainbow.selection import Selection, get_selector

JOBSPEC = "version: 1\nresources:\n  one:\n    type: node\ntasks:\n  - command: [hostname]\n    resources: one\n"


def test_only_matching_known_clusters_are_offered_to_the_selector():
    results = {"a": MatchResult(True), "b": MatchResult(False, "needs 4 gpus"), "c": MatchResult(True),
               "d": MatchResult(False)}
    states = {"a": {"free": 1}}  # c matched but is not known (deleted meanwhile)
    placement = select_cluster(["a", "b", "c", "d"], results, states, get_selector("random", {}), {},
                               random.Random(1))
    assert placement.selection is not None and placement.selection.clusters == ["a"]
    assert placement.selection.candidates == ("a",)
    assert placement.reasons == {"b": "needs 4 gpus", "d": "does not match"}
    assert placement.explanation == placement.selection.reason


def test_nothing_matching_explains_each_cluster():
    results = {"a": MatchResult(False, "too small"), "b": MatchResult(True)}
    placement = select_cluster(["a", "b"], results, {}, get_selector("random", {}), {})
    assert placement == Placement(None, {"a": "too small"})
    assert placement.explanation == "a: too small"


def test_submit_decision_names_the_job_and_its_matching_candidates():
    jobspec = parse_jobspec(JOBSPEC)
    placement = Placement(Selection(["c"], "random choice", "random", ("a", "c")), {"b": "too small"})
    pending = submit_decision(placement, ["a", "b", "c"], "", JOBSPEC, jobspec, 5.0, key="k1")
    assert isinstance(pending, PendingSubmit)
    assert (pending.job.cluster, pending.job.name, pending.job.command) == ("c", jobspec.name, "hostname")
    assert (pending.job.candidates, pending.job.key, pending.job.now) == (("a", "c"), "k1", 5.0)
    assert pending.authorized == ("a", "b", "c")
    satisfied = submit_decision(placement, ["a", "b", "c"], "x", JOBSPEC, jobspec, 5.0, satisfy_only=True)
    assert satisfied == SubmitOutcome(None, ["c"], placement.selection, {"b": "too small"})


def test_submit_decision_refuses_with_the_reasons():
    jobspec = parse_jobspec(JOBSPEC)
    with pytest.raises(FailedPrecondition, match=r"no listed cluster can run this job \(a: too small\)"):
        submit_decision(Placement(None, {"a": "too small"}), ["a"], "", JOBSPEC, jobspec, 0.0)
    assert submit_decision(Placement(None, {"a": "too small"}), ["a"], "", JOBSPEC, jobspec, 0.0,
                           satisfy_only=True) == SubmitOutcome(None, [], None, {"a": "too small"})
    with pytest.raises(FailedPrecondition, match="all filtered") as error:
        submit_decision(Placement(Selection([], "all filtered", "constraint", ("a",)), {}), ["a"], "", JOBSPEC,
                        jobspec, 0.0)
    assert error.value.field == "select_algorithm"
