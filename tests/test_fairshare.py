"""The fair-share arithmetic (rainbow.fairshare): decay, Slurm's classic factor over a bank tree, the hand-out
order and the quotas that hold jobs back. Pure functions: examples worked by hand, then properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rainbow.fairshare import (
    ROOT,
    Association,
    Bank,
    Held,
    Limit,
    UsageRecord,
    Waiting,
    decayed_usage,
    factor,
    hand_out,
    standings,
)

HOUR = 3600.0
DAY = 24 * HOUR


def test_usage_is_node_seconds_and_a_running_job_counts_up_to_now():
    records = [UsageRecord("alice", "", 4, 100.0, 160.0), UsageRecord("alice", "", 2, 150.0, None),
               UsageRecord("bob", "physics", 1, 0.0, 10.0)]
    usage = decayed_usage(records, now=200.0, half_life=0)
    assert usage == {("alice", ""): 4 * 60 + 2 * 50, ("bob", "physics"): 10.0}


def test_decay_halves_usage_one_half_life_old():
    """One node from 2h ago to 1h ago, half-life 1h: h/ln2 * (2^-1 - 2^-2) node-seconds."""
    usage = decayed_usage([UsageRecord("alice", "", 1, 0.0, HOUR)], now=2 * HOUR, half_life=HOUR)
    assert usage[("alice", "")] == pytest.approx(HOUR / math.log(2) * (0.5 - 0.25))
    # the same run, a long time ago, weighs almost nothing; undecayed it weighs its full hour
    old = decayed_usage([UsageRecord("alice", "", 1, 0.0, HOUR)], now=30 * HOUR, half_life=HOUR)
    assert old[("alice", "")] < 1e-4
    assert decayed_usage([UsageRecord("alice", "", 1, 0.0, HOUR)], now=30 * HOUR, half_life=0) == {
        ("alice", ""): HOUR}


def test_classic_factor_flat():
    """F = 2^(-U/S): no usage 1, exactly one's share 0.5, twice one's share 0.25."""
    table = standings([], [Association("alice"), Association("bob"), Association("carol")],
                      {("alice", ROOT): 0.0, ("bob", ROOT): 1.0, ("carol", ROOT): 2.0})
    assert table[("alice", ROOT)].factor == 1.0
    assert table[("bob", ROOT)].norm_shares == pytest.approx(1 / 3)
    assert table[("bob", ROOT)].norm_usage == pytest.approx(1 / 3)
    assert table[("bob", ROOT)].factor == pytest.approx(0.5)
    assert table[("carol", ROOT)].factor == pytest.approx(0.25)


def test_shares_weigh_usage():
    table = standings([], [Association("alice", shares=3), Association("bob", shares=1)],
                      {("alice", ROOT): 3.0, ("bob", ROOT): 1.0})
    # each used exactly their share
    assert table[("alice", ROOT)].factor == pytest.approx(0.5)
    assert table[("bob", ROOT)].factor == pytest.approx(0.5)


def test_a_banks_usage_weighs_on_its_members():
    """Two banks with equal shares; physics used a lot (through alice). carol, in physics, used nothing and
    still ranks below dave, who used nothing in the idle bank."""
    banks = [Bank("physics"), Bank("chemistry")]
    members = [Association("alice", "physics"), Association("carol", "physics"), Association("dave", "chemistry")]
    table = standings(banks, members, {("alice", "physics"): 100.0})
    carol, dave = table[("carol", "physics")], table[("dave", "chemistry")]
    assert (carol.norm_shares, dave.norm_shares) == (pytest.approx(0.25), pytest.approx(0.5))
    assert carol.usage == dave.usage == 0.0
    # U_E(carol) = 0 + (U_E(physics) - 0) * 1/2 = 0.5
    assert carol.effective_usage == pytest.approx(0.5)
    assert dave.effective_usage == 0.0
    assert carol.factor < dave.factor == 1.0


def test_nested_banks_multiply_shares_and_unknown_banks_fold_into_the_root():
    banks = [Bank("science", shares=3), Bank("physics", "science", 1), Bank("chemistry", "science", 1),
             Bank("admin", shares=1)]
    members = [Association("alice", "physics"), Association("bob", "chemistry"), Association("root", "admin")]
    table = standings(banks, members, {("eve", "gone"): 5.0})
    # the root holds science (3), admin (1) and eve (1, her bank is unknown)
    assert table[("alice", "physics")].norm_shares == pytest.approx(3 / 5 * 1 / 2)
    assert table[("root", "admin")].norm_shares == pytest.approx(1 / 5)
    assert table[("eve", ROOT)].usage == 5.0


def test_a_parent_loop_is_cut_not_followed():
    banks = [Bank("a", "b"), Bank("b", "a")]
    table = standings(banks, [Association("alice", "a")], {})
    assert table[("alice", "a")].norm_shares > 0


def test_hand_out_alternates_users_without_usage():
    waiting = [Waiting(i, "alice", ROOT) for i in range(1, 31)] + [Waiting(i, "bob", ROOT) for i in range(31, 41)]
    ids = hand_out(waiting, 10).ids
    assert ids == [1, 31, 2, 32, 3, 33, 4, 34, 5, 35]


def test_priority_orders_a_users_own_jobs_only():
    waiting = [Waiting(1, "alice", ROOT), Waiting(2, "alice", ROOT, priority=5), Waiting(3, "bob", ROOT)]
    assert hand_out(waiting, 2).ids == [2, 3]
    # when every waiting job goes (and no quota applies) their order changes nothing: submission order
    assert hand_out(waiting, 0).ids == hand_out(waiting, 3).ids == [1, 2, 3]


def test_held_jobs_count_against_their_user():
    waiting = [Waiting(1, "alice", ROOT), Waiting(2, "bob", ROOT)]
    held = [Held("alice", ROOT, "keebler", 3, 3)]
    assert hand_out(waiting, 1, "keebler", held=held).ids == [2]


def test_usage_decides_and_shares_weigh_it():
    table = standings([], [Association("alice", shares=1), Association("bob", shares=1)],
                      {("alice", ROOT): 10 * HOUR, ("bob", ROOT): 1 * HOUR})
    waiting = [Waiting(1, "alice", ROOT), Waiting(2, "bob", ROOT)]
    assert hand_out(waiting, 1, standing=table, total_usage=11 * HOUR).ids == [2]
    table = standings([], [Association("alice", shares=100), Association("bob", shares=1)],
                      {("alice", ROOT): 10 * HOUR, ("bob", ROOT): 1 * HOUR})
    assert hand_out(waiting, 1, standing=table, total_usage=11 * HOUR).ids == [1]


def test_max_running_and_max_nodes_hold_jobs_back_with_why():
    waiting = [Waiting(1, "alice", "physics", nodes=2), Waiting(2, "alice", "physics", nodes=2),
               Waiting(3, "bob", "physics"), Waiting(4, "carol", ROOT)]
    limits = [Limit("user", "alice", max_running=1), Limit("group", "physics", max_nodes=3)]
    # one-node jobs first (a 2-node job charges twice), then alice's first; her second passes max-running
    out = hand_out(waiting, 0, "keebler", limits=limits)
    assert out.ids == [3, 4, 1]
    assert out.held_back == {2: "quota: user alice has 1 of max-running 1 jobs running"}
    # bob runs 2 nodes of physics already: alice's 2-node job would pass the group's max-nodes
    held = [Held("bob", "physics", "keebler", 1, 2)]
    out = hand_out(waiting, 0, "keebler", held=held, limits=limits)
    assert out.ids == [4, 3]
    assert out.held_back[1] == "quota: group physics has 2 of max-nodes 3 nodes in use (this job asks for 2)"
    # a quota of another cluster does not apply
    other = [Limit("user", "alice", "quebec", max_running=0)]
    assert hand_out(waiting, 0, "keebler", limits=other).held_back == {}


# -- properties --------------------------------------------------------------------------------------
users = st.sampled_from(["alice", "bob", "carol", "dave"])
bank_names = st.sampled_from([ROOT, "physics", "chemistry", "hep"])


@st.composite
def worlds(draw):
    banks = [Bank("physics", ROOT, draw(st.integers(0, 5))), Bank("chemistry", ROOT, draw(st.integers(0, 5))),
             Bank("hep", "physics", draw(st.integers(0, 5)))]
    members = [Association(u, draw(bank_names), draw(st.integers(0, 5)))
               for u in draw(st.lists(users, unique=True))]
    usage = draw(st.dictionaries(st.tuples(users, bank_names), st.floats(0, 1e7)))
    return banks, members, usage


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_factors_are_between_0_and_1_and_shares_sum_to_at_most_1(world):
    table = standings(*world)
    assert all(0.0 <= s.factor <= 1.0 for s in table.values())
    assert sum(s.norm_shares for s in table.values()) <= 1.0 + 1e-9
    assert all(0.0 <= s.norm_usage <= 1.0 + 1e-9 for s in table.values())


@settings(max_examples=200, deadline=None)
@given(worlds(), users, bank_names, st.floats(1.0, 1e7))
def test_more_usage_never_raises_ones_factor(world, user, bank, more):
    banks, members, usage = world
    before = standings(banks, members, usage)
    after = standings(banks, members, {**usage, (user, bank): usage.get((user, bank), 0.0) + more})
    key = (user, bank)  # every bank drawn exists, so the usage stays with this association
    assert after[key].usage == pytest.approx(before[key].usage + more if key in before else more)
    if key in before:
        assert after[key].factor <= before[key].factor + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(users, st.integers(-3, 3), st.integers(1, 4)), max_size=60), st.integers(-1, 70))
def test_hand_out_is_an_ordered_selection(jobs, limit):
    waiting = [Waiting(i + 1, user, ROOT, priority, nodes) for i, (user, priority, nodes) in enumerate(jobs)]
    ids = hand_out(waiting, limit).ids
    assert len(ids) == len(set(ids)) == (len(waiting) if limit < 1 else min(limit, len(waiting)))
    if len(ids) == len(waiting):
        assert ids == sorted(ids)
        return
    by_id = {job.id: job for job in waiting}
    for user in {job.user for job in waiting}:
        mine = [by_id[i] for i in ids if by_id[i].user == user]
        assert mine == sorted(mine, key=lambda job: (-job.priority, job.id))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 30))
def test_two_users_without_usage_share_the_first_jobs_evenly(first, second, take):
    waiting = [Waiting(i, "alice", ROOT) for i in range(first)] + [
        Waiting(first + i, "bob", ROOT) for i in range(second)]
    ids = hand_out(waiting, take).ids
    bobs = sum(1 for i in ids if i >= first)
    alices = len(ids) - bobs
    if min(first, second) * 2 >= len(ids):
        assert abs(alices - bobs) <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e6), st.integers(1, 8)), max_size=20),
       st.floats(1.0, 1e7))
def test_decayed_usage_is_at_most_the_undecayed(runs, half_life):
    now = 2e6
    records = [UsageRecord("alice", ROOT, nodes, min(a, b), max(a, b)) for a, b, nodes in runs]
    decayed = decayed_usage(records, now, half_life).get(("alice", ROOT), 0.0)
    plain = decayed_usage(records, now, 0).get(("alice", ROOT), 0.0)
    assert 0.0 <= decayed <= plain + 1e-6


def test_factor_without_shares_is_zero():
    assert factor(0.0, 0.0) == 0.0
