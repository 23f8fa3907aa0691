"""Who may use a cluster, as a pure function of its rules (``may_use``)."""

from __future__ import annotations

import pytest

from rainbow.scheduler.authorization import may_use
from rainbow.store import AccessRule


def rules(*entries: str) -> list[AccessRule]:
    """'+user:alice' allows, '-group:chem' denies."""
    return [AccessRule("c", entry[1:].split(":")[0], entry[1:].split(":")[1], entry[0] == "+") for entry in entries]


@pytest.mark.parametrize(("given", "user", "groups", "allowed"), [
    ((), "alice", (), True),  # no rule: open to every user
    (("+user:alice",), "alice", (), True),
    (("+user:alice",), "bob", ("physics",), False),  # an allow closes the cluster to the others
    (("+group:physics",), "bob", ("chem", "physics"), True),  # through any of their groups
    (("+group:physics",), "carol", ("chem",), False),
    (("-user:bob",), "bob", (), False),
    (("-user:bob",), "alice", (), True),  # only denies: open to everyone else
    (("+group:physics", "-user:bob"), "bob", ("physics",), False),  # a deny wins over an allow
    (("+user:bob", "-group:physics"), "bob", ("physics",), False),
    (("+group:physics", "-group:chem"), "dave", ("physics", "chem"), False),
    (("-group:chem",), "erin", (), True),
])
def test_may_use(given, user, groups, allowed):
    assert may_use(rules(*given), user, groups) is allowed
