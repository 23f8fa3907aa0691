"""Flux node constraints: RFC 35 text to RFC 31 JSON, validation and evaluation.

RFC 31 (``attributes.system.constraints``) is a JSON object whose one key is an
operator: ``properties`` (a list of names, ``^name`` negated), ``hostlist`` (a
list of RFC 29 hostlists), ``ranks`` (a list of RFC 22 idsets), or ``and``,
``or``, ``not`` over a list of constraints (``not`` negates their conjunction).
``{}`` allows every node.

RFC 35 is the text ``flux submit --requires`` takes, read as flux-core's parser
reads it: terms ``[op:]value`` (``op`` one of ``host``/``hosts``/``hostlist``,
``rank``/``ranks``, ``properties``; a bare value is a property list split on
commas), joined by ``and``/``&``/``&&``, ``or``/``|``/``||``, negated by ``not``
(an expression) or ``-`` (one term), grouped with parentheses; adjacent terms
are and-ed. ``not`` binds tighter than ``and``, ``and`` tighter than ``or``.
Keywords and operators are lower case (``NOT`` is a property name, as in Flux),
and ``!`` is no operator (``!x`` is a property named ``!x``).

Pure functions over plain data, no ``flux`` import: the client, the server and
the matcher all use them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.hostlists import expand_hostlist, expand_idset, hostlist_size, idset_size

OPERATORS = ("properties", "hostlist", "ranks", "and", "or", "not")
# The most hosts or ranks one hostlist or idset of a constraint may name (each is expanded to check it).
MAX_LISTED = 100_000
_TERM_OPS = {
    "properties": "properties",
    "host": "hostlist",
    "hosts": "hostlist",
    "hostlist": "hostlist",
    "rank": "ranks",
    "ranks": "ranks",
}
# ``-`` opens a negated term wherever a token starts; inside a word it is a character (``rank:0-3``).
_TOKEN = re.compile(
    r'\s*(?:(\(|\)|&&|\|\||&|\||-)|"([^"]*)"|\'([^\']*)\''
    r'|([^\s()&|"\':]+:(?:"[^"]*"|\'[^\']*\')|[^\s()&|"\']+))'
)
_PROPERTY = re.compile(r"^\^?[^\s^,]+$")


def parse_requires(text: str, field: str = "requires") -> dict[str, Any]:
    """RFC 35 text -> RFC 31 JSON (what ``flux submit --requires`` sends); empty text -> ``{}``."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}: must be a string", field=field)
    tokens = _tokenize(text, field)
    if not tokens:
        return {}
    parser = _Parser(tokens, text, field)
    try:
        tree = parser.expression()
    except RecursionError:
        raise InvalidArgument(f"{field}: nested too deeply", field=field) from None
    if parser.pos != len(tokens):
        raise InvalidArgument(f"{field}: unexpected {tokens[parser.pos][1]!r} in {text!r}", field=field)
    return tree


def _tokenize(text: str, field: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs: kind is ``op`` for punctuation, ``word`` or ``quoted``."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if found is None:
            raise InvalidArgument(f"{field}: cannot read {text[pos:]!r}", field=field)
        punct, dquoted, squoted, word = found.groups()
        if punct is not None:
            tokens.append(("op", punct))
        elif word is not None:
            tokens.append(("word", word))
        else:
            tokens.append(("quoted", dquoted if dquoted is not None else squoted))
        pos = found.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str, field: str) -> None:
        self.tokens = tokens
        self.text = text
        self.field = field
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def fail(self, what: str) -> InvalidArgument:
        return InvalidArgument(f"{self.field}: {what} in {self.text!r}", field=self.field)

    def is_word(self, token: tuple[str, str] | None, *words: str) -> bool:
        return token is not None and token[0] == "word" and token[1] in words

    def expression(self) -> dict[str, Any]:
        terms = [self.conjunction()]
        while True:
            token = self.peek()
            if token in (("op", "|"), ("op", "||")) or self.is_word(token, "or"):
                self.pos += 1
                terms.append(self.conjunction())
            else:
                break
        return terms[0] if len(terms) == 1 else {"or": terms}

    def conjunction(self) -> dict[str, Any]:
        terms = [self.unary()]
        while True:
            token = self.peek()
            if token in (("op", "&"), ("op", "&&")) or self.is_word(token, "and"):
                self.pos += 1
                terms.append(self.unary())
            elif token is not None and token != ("op", ")") and token not in (("op", "|"), ("op", "||")) and not (
                self.is_word(token, "or")
            ):
                terms.append(self.unary())
            else:
                break
        return terms[0] if len(terms) == 1 else {"and": terms}

    def unary(self) -> dict[str, Any]:
        token = self.peek()
        if token is None:
            raise self.fail("a term is missing at the end")
        if self.is_word(token, "not"):
            self.pos += 1
            return {"not": [self.unary()]}
        if token == ("op", "-"):
            self.pos += 1
            negated = self.peek()
            if negated is None or negated[0] == "op" or self.is_word(negated, "and", "or", "not"):
                raise self.fail("'-' negates one term (use 'not' for an expression)")
            self.pos += 1
            return {"not": [self.term(negated[1])]}
        if token == ("op", "("):
            self.pos += 1
            inner = self.expression()
            if self.peek() != ("op", ")"):
                raise self.fail("missing ')'")
            self.pos += 1
            return inner
        if token[0] == "op":
            raise self.fail(f"unexpected {token[1]!r}")
        self.pos += 1
        return self.term(token[1])

    def term(self, value: str) -> dict[str, Any]:
        op, sep, rest = value.partition(":")
        if sep:
            name = _TERM_OPS.get(op)
            if name is None:
                raise self.fail(f"unknown constraint operator {op!r} (use host, rank or properties)")
        else:
            name, rest = "properties", value
        if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
            rest = rest[1:-1]
        if not rest:
            raise self.fail(f"{value!r} has no value")
        if name == "properties":
            values = [v for v in rest.split(",") if v]
            for v in values:
                if not _PROPERTY.match(v):
                    raise self.fail(f"{v!r} is not a property name")
            return {"properties": values}
        return {name: [rest]}


def validate_constraint(constraint: Any, field: str = "constraints") -> dict[str, Any]:
    """Check an RFC 31 object (operators, value types, hostlists, idsets); returns it unchanged."""
    if not isinstance(constraint, Mapping):
        raise InvalidArgument(f"{field}: must be an object", field=field)
    if len(constraint) > 1:
        raise InvalidArgument(f"{field}: one operator per object, got {sorted(constraint)}", field=field)
    for op, values in constraint.items():
        where = f"{field}.{op}"
        if op not in OPERATORS:
            raise InvalidArgument(f"{field}: unknown operator {op!r} (one of {', '.join(OPERATORS)})", field=field)
        if not isinstance(values, list):
            raise InvalidArgument(f"{where}: must be a list", field=where)
        for i, value in enumerate(values):
            here = f"{where}[{i}]"
            if op in ("and", "or", "not"):
                validate_constraint(value, here)
            elif not isinstance(value, str) or not value:
                raise InvalidArgument(f"{here}: must be a non-empty string", field=here)
            elif op == "properties" and not _PROPERTY.match(value):
                raise InvalidArgument(f"{here}: {value!r} is not a property name", field=here)
            elif op in ("hostlist", "ranks"):
                _check_list(op, value, here)
    return dict(constraint)


def _check_list(op: str, value: str, where: str) -> None:
    """A hostlist or idset that parses and names at most :data:`MAX_LISTED` hosts or ranks."""
    try:
        size = hostlist_size(value) if op == "hostlist" else idset_size(value)
        if size > MAX_LISTED:
            what = "hosts" if op == "hostlist" else "ranks"
            raise InvalidArgument(f"{value!r} names more than {MAX_LISTED} {what}", field=where)
        if op == "hostlist":
            expand_hostlist(value)
        else:
            expand_idset(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}", field=where) from None


@dataclass(frozen=True)
class NodeLabel:
    """What a constraint can look at on one node: its properties, hostname and broker rank."""

    properties: frozenset[str] = frozenset()
    hostname: str = ""
    rank: int = -1


class Constraint:
    """A compiled RFC 31 constraint; ``allows(node)`` evaluates it on a :class:`NodeLabel`."""

    def __init__(self, tree: Mapping[str, Any]) -> None:
        self.tree = dict(tree)

    @cached_property
    def key(self) -> str:
        return json.dumps(self.tree, sort_keys=True)

    @cached_property
    def properties_only(self) -> bool:
        """True when only properties are tested (then nodes with equal properties are equivalent)."""
        return _properties_only(self.tree)

    @cached_property
    def _hosts(self) -> dict[int, frozenset[str]]:
        return {id(v): frozenset(expand_hostlist(v)) for v in _values(self.tree, "hostlist")}

    @cached_property
    def _ranks(self) -> dict[int, frozenset[int]]:
        return {id(v): frozenset(expand_idset(v)) for v in _values(self.tree, "ranks")}

    def allows(self, node: NodeLabel) -> bool:
        return self._eval(self.tree, node)

    def _eval(self, tree: Mapping[str, Any], node: NodeLabel) -> bool:
        for op, values in tree.items():
            if op == "properties":
                for name in values:
                    if name.startswith("^"):
                        if name[1:] in node.properties:
                            return False
                    elif name not in node.properties:
                        return False
            elif op == "hostlist":
                if not any(node.hostname in self._hosts[id(v)] for v in values):
                    return False
            elif op == "ranks":
                if not any(node.rank in self._ranks[id(v)] for v in values):
                    return False
            elif op == "and":
                if not all(self._eval(v, node) for v in values):
                    return False
            elif op == "or":
                if not any(self._eval(v, node) for v in values):
                    return False
            elif op == "not" and all(self._eval(v, node) for v in values):
                return False
        return True

    @cached_property
    def description(self) -> str:
        """``with property 'pbatch'``, ``without property 'pdebug'``, else ``matching 'EXPR'``."""
        tree = self.tree
        if set(tree) == {"properties"} and tree["properties"]:
            names = tree["properties"]
            if all(not n.startswith("^") for n in names):
                quoted = " and ".join(f"'{n}'" for n in names)
                return f"with propert{'y' if len(names) == 1 else 'ies'} {quoted}"
            if all(n.startswith("^") for n in names):
                quoted = " or ".join(f"'{n[1:]}'" for n in names)
                return f"without propert{'y' if len(names) == 1 else 'ies'} {quoted}"
        return f"matching '{to_text(tree)}'"


def _properties_only(tree: Mapping[str, Any]) -> bool:
    for op, values in tree.items():
        if op in ("hostlist", "ranks"):
            return False
        if op in ("and", "or", "not") and not all(_properties_only(v) for v in values):
            return False
    return True


def _values(tree: Mapping[str, Any], wanted: str) -> Iterable[str]:
    for op, values in tree.items():
        if op == wanted:
            yield from values
        elif op in ("and", "or", "not"):
            for value in values:
                yield from _values(value, wanted)


def to_text(tree: Mapping[str, Any]) -> str:
    """RFC 35 text for an RFC 31 object (parses back to an equivalent constraint)."""
    parts: list[str] = []
    for op, values in tree.items():
        if op == "properties":
            parts.append(",".join(values))
        elif op == "hostlist":
            parts.append(" or ".join(f"host:{v}" for v in values))
        elif op == "ranks":
            parts.append(" or ".join(f"rank:{v}" for v in values))
        elif op == "and":
            parts.append(" and ".join(_group(v) for v in values))
        elif op == "or":
            parts.append(" or ".join(_group(v) for v in values))
        elif op == "not":
            inner = " and ".join(_group(v) for v in values)
            parts.append(f"not ({inner})" if len(values) > 1 else f"not {inner}")
    return " and ".join(p for p in parts if p)


def _group(tree: Mapping[str, Any]) -> str:
    text = to_text(tree)
    return f"({text})" if " " in text and not text.startswith("not ") else text


def combine(*trees: Mapping[str, Any] | None) -> dict[str, Any]:
    """The conjunction of some constraints (None and ``{}`` are left out)."""
    parts = [dict(t) for t in trees if t]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"and": parts}
