"""Safe expressions for selection steps (``filter`` and ``calc``).

An expression is parsed once, checked against a whitelist of syntax and then
evaluated many times (once per cluster) with simpleeval, never with ``eval``.

The language is a small, typed subset of Python expressions:

* literals: integers, floats, strings, ``True``/``False`` (``true``/``false`` too);
* names: cluster state keys, job parameters and earlier ``calc`` results;
* arithmetic ``+ - * / // % **`` on numbers only (booleans and strings are not numbers);
* comparisons ``== != < <= > >=`` (ordering needs two numbers or two strings),
  ``in``/``not in`` between strings;
* ``and``, ``or``, ``not`` and ``x if condition else y`` on booleans only;
* the functions ``min``, ``max`` (two or more numbers, or strings), ``abs`` and
  ``round(x[, digits])``; nothing else can be called.

There is no attribute access, indexing, comprehension, lambda, f-string or
assignment; exponents, expression length and nesting depth are bounded.
Parse-time problems raise :class:`~rainbow.errors.InvalidArgument`; problems while
evaluating one cluster's values raise :class:`EvaluationError`, which the caller
turns into "this cluster is dropped by this step".
"""

from __future__ import annotations

import ast
import math
import operator
import threading
from collections.abc import Callable, Mapping, Set
from typing import Any, Literal

import simpleeval

from rainbow.errors import InvalidArgument

Scalar = bool | int | float | str
ExpressionKind = Literal["filter", "calc"]

MAX_EXPRESSION_LENGTH = 1000
MAX_DEPTH = 64
MAX_INT_BITS = 1024
MAX_ROUND_DIGITS = 100

FUNCTION_NAMES = ("abs", "max", "min", "round")
TRUE_FALSE_ALIASES = {"true": True, "false": False}


class EvaluationError(Exception):
    """An expression could not be evaluated with one cluster's values.

    ``reason`` is short and human readable (``"missing 'nodes_free'"``,
    ``"division by zero"``, ``"wrong type: ..."``) and ends up in the selection log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_number(value: object) -> bool:
    """A real number for arithmetic: int or float, but not bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: object) -> bool:
    """A value expressions can see: bool, int, float (not NaN) or str."""
    if isinstance(value, float):
        return not math.isnan(value)
    return isinstance(value, (bool, int, str))


def visible(values: Mapping[str, Any] | None) -> dict[str, Scalar]:
    """The entries of ``values`` an expression can see: string keys with scalar values.

    ``null``, lists, objects and NaN are left out, as if the key were absent.
    """
    if not values:
        return {}
    return {key: value for key, value in values.items() if isinstance(key, str) and is_scalar(value)}


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def short(value: object) -> str:
    """``repr(value)``, cut to a length fit for a one-line message."""
    if isinstance(value, int) and value.bit_length() > 128:
        return "a very large number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(value: object) -> str:
    return f"{_type_name(value)} {short(value)}"


def _bounded(result: Any) -> Any:
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise simpleeval.NumberTooHigh(f"integer results are limited to {MAX_INT_BITS} bits")
    return result


# Operators: every one checks its operand types, so the language behaves the same on
# every cluster and a wrong-typed value is an error, not a silent coercion.


def _numbers(symbol: str, *values: object) -> None:
    for value in values:
        if not is_number(value):
            raise TypeError(f"'{symbol}' needs numbers, got {_describe(value)}")


def _arithmetic(symbol: str, function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        _numbers(symbol, left, right)
        return _bounded(function(left, right))

    return apply


def _power(base: Any, exponent: Any) -> Any:
    _numbers("**", base, exponent)
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and exponent * abs(base).bit_length() > MAX_INT_BITS and abs(base) > 1:
        raise simpleeval.NumberTooHigh(f"integer results are limited to {MAX_INT_BITS} bits")
    result = base**exponent
    if isinstance(result, complex):
        raise ValueError("a negative number to a fractional power is not a real number")
    return _bounded(result)


def _ordering(symbol: str, function: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
            return function(left, right)
        raise TypeError(
            f"'{symbol}' needs two numbers or two strings, got {_describe(left)} and {_describe(right)}"
        )

    return apply


def _contains(symbol: str, negate: bool) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if isinstance(left, str) and isinstance(right, str):
            return (left in right) != negate
        raise TypeError(f"'{symbol}' needs two strings, got {_describe(left)} and {_describe(right)}")

    return apply


def _not(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"'not' needs a boolean, got {_describe(value)}")
    return not value


def _negative(value: Any) -> Any:
    _numbers("-", value)
    return -value


def _positive(value: Any) -> Any:
    _numbers("+", value)
    return +value


OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: _arithmetic("+", operator.add),
    ast.Sub: _arithmetic("-", operator.sub),
    ast.Mult: _arithmetic("*", operator.mul),
    ast.Div: _arithmetic("/", operator.truediv),
    ast.FloorDiv: _arithmetic("//", operator.floordiv),
    ast.Mod: _arithmetic("%", operator.mod),
    ast.Pow: _power,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: _ordering("<", operator.lt),
    ast.LtE: _ordering("<=", operator.le),
    ast.Gt: _ordering(">", operator.gt),
    ast.GtE: _ordering(">=", operator.ge),
    ast.In: _contains("in", negate=False),
    ast.NotIn: _contains("not in", negate=True),
    ast.Not: _not,
    ast.USub: _negative,
    ast.UAdd: _positive,
}

_SYMBOLS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def _extremum(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        if all(is_number(value) for value in values) or all(isinstance(value, str) for value in values):
            return function(values)
        kinds = ", ".join(_describe(value) for value in values)
        raise TypeError(f"{name}() needs numbers or strings, got {kinds}")

    return apply


def _abs(value: Any) -> Any:
    _numbers("abs", value)
    return abs(value)


def _round(value: Any, digits: Any = None) -> Any:
    _numbers("round", value)
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or isinstance(digits, bool):
        raise TypeError(f"round() digits must be an integer, got {_describe(digits)}")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise ValueError(f"round() digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")
    return round(value, digits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": _abs,
    "max": _extremum("max", max),
    "min": _extremum("min", min),
    "round": _round,
}

# (fewest, most) positional arguments; None = no upper bound.
_ARITY: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "max": (2, None),
    "min": (2, None),
    "round": (1, 2),
}

# Everything a failed evaluation may raise; anything else would be a bug here.
EVALUATION_ERRORS = (simpleeval.InvalidExpression, ArithmeticError, TypeError, ValueError, RecursionError)


def classify(error: BaseException) -> str:
    """A short reason for an evaluation failure."""
    if isinstance(error, simpleeval.NameNotDefined):
        return f"missing {error.name!r}"
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    if isinstance(error, (OverflowError, simpleeval.NumberTooHigh)):
        return "number too large"
    if isinstance(error, TypeError):
        return f"wrong type: {error}"
    if isinstance(error, RecursionError):
        return "expression too deep"
    return f"cannot evaluate: {error}"


class _Evaluator(simpleeval.SimpleEval):
    """simpleeval restricted to our operators and functions, with strict booleans.

    One instance per thread (see :func:`_evaluator`): simpleeval keeps the names
    and expression of the current evaluation on the instance.
    """

    def __init__(self) -> None:
        super().__init__(operators=dict(OPERATORS), functions=dict(FUNCTIONS), names={})
        # Defense in depth: the parse-time whitelist already refuses these nodes.
        for node_type in (
            ast.Attribute,
            ast.Subscript,
            ast.Slice,
            ast.JoinedStr,
            ast.FormattedValue,
            ast.Assign,
            ast.AugAssign,
            ast.Import,
            ast.Expr,
        ):
            self.nodes.pop(node_type, None)

    def _eval_name(self, node: ast.Name) -> Any:
        try:
            return self.names[node.id]
        except KeyError:
            raise simpleeval.NameNotDefined(node.id, self.expr) from None

    def _eval_boolop(self, node: ast.BoolOp) -> bool:
        stop_at = isinstance(node.op, ast.Or)
        symbol = "or" if stop_at else "and"
        for value_node in node.values:
            value = self._eval(value_node)
            if not isinstance(value, bool):
                raise TypeError(f"'{symbol}' needs booleans, got {_describe(value)}")
            if value is stop_at:
                return value
        return not stop_at

    def _eval_ifexp(self, node: ast.IfExp) -> Any:
        test = self._eval(node.test)
        if not isinstance(test, bool):
            raise TypeError(f"'if' needs a boolean condition, got {_describe(test)}")
        return self._eval(node.body if test else node.orelse)


_local = threading.local()


def _evaluator() -> _Evaluator:
    evaluator = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _Evaluator()
    return evaluator


# What each refused node is called in messages.
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment expressions",
    ast.Starred: "'*' unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}


class _Refused(Exception):
    pass


def _depth(tree: ast.AST) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _whitelist(node: ast.AST) -> set[str]:
    """Refuse anything outside the language; return the names the expression reads."""
    names: set[str] = set()
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Constant):
            if type(current.value) not in (bool, int, float, str):
                raise _Refused(f"the literal {current.value!r} is not supported")
        elif isinstance(current, ast.Name):
            if current.id in FUNCTIONS:
                raise _Refused(f"{current.id} is a function: call it, as in {current.id}(...)")
            names.add(current.id)
        elif isinstance(current, ast.BinOp):
            if type(current.op) not in OPERATORS:
                if isinstance(current.op, ast.BitXor):
                    raise _Refused("'^' is not supported (use ** for powers)")
                raise _Refused("bitwise operators are not supported")
            stack.extend((current.left, current.right))
        elif isinstance(current, ast.UnaryOp):
            if type(current.op) not in OPERATORS:
                raise _Refused("bitwise operators are not supported")
            stack.append(current.operand)
        elif isinstance(current, ast.BoolOp):
            stack.extend(current.values)
        elif isinstance(current, ast.Compare):
            for comparison in current.ops:
                if type(comparison) not in OPERATORS:
                    raise _Refused("'is' is not supported (use == or !=)")
            stack.append(current.left)
            stack.extend(current.comparators)
        elif isinstance(current, ast.IfExp):
            stack.extend((current.test, current.body, current.orelse))
        elif isinstance(current, ast.Call):
            _check_call(current)
            stack.extend(current.args)
        else:
            what = _REFUSED.get(type(current), type(current).__name__)
            raise _Refused(f"not allowed: {what}")
    return names


def _check_call(call: ast.Call) -> None:
    allowed = ", ".join(FUNCTION_NAMES)
    if not isinstance(call.func, ast.Name):
        raise _Refused(f"only the functions {allowed} can be called")
    name = call.func.id
    if name not in FUNCTIONS:
        raise _Refused(f"function {name!r} is not allowed (available: {allowed})")
    if call.keywords or any(isinstance(arg, ast.Starred) for arg in call.args):
        raise _Refused(f"{name}() takes plain positional arguments")
    fewest, most = _ARITY[name]
    if len(call.args) < fewest or (most is not None and len(call.args) > most):
        expected = (
            f"{fewest}" if fewest == most else f"{fewest} or more" if most is None else f"{fewest} to {most}"
        )
        raise _Refused(f"{name}() takes {expected} arguments, got {len(call.args)}")


class _Aliases(ast.NodeTransformer):
    """``true``/``false`` (as in JSON and the original rainbow) mean ``True``/``False``."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in TRUE_FALSE_ALIASES:
            return ast.copy_location(ast.Constant(TRUE_FALSE_ALIASES[node.id]), node)
        return node


_UNKNOWN: Any = object()


class _StaticError(Exception):
    pass


class Expression:
    """A parsed, checked expression; immutable and safe to share between threads."""

    __slots__ = ("kind", "names", "text", "tree")

    def __init__(self, text: str, tree: ast.expr, names: frozenset[str], kind: ExpressionKind) -> None:
        self.text = text
        self.tree = tree
        self.names = names
        self.kind = kind

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expression):
            return NotImplemented
        return (self.text, self.kind) == (other.text, other.kind)

    def __hash__(self) -> int:
        return hash((self.text, self.kind))

    @classmethod
    def parse(cls, text: object, *, kind: ExpressionKind, where: str) -> Expression:
        """Parse and check ``text``.

        ``where`` prefixes error messages, e.g. ``priorities[0].steps[1].filter``.
        """
        if not isinstance(text, str):
            raise InvalidArgument(
                f"{where}: expected an expression string, got {_describe(text)}", field=where
            )
        source = text.strip()
        if not source:
            raise InvalidArgument(f"{where}: the expression is empty", field=where)
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise InvalidArgument(
                f"{where}: the expression is longer than {MAX_EXPRESSION_LENGTH} characters", field=where
            )
        try:
            tree = ast.parse(source, mode="eval").body
        except SyntaxError as error:
            raise InvalidArgument(
                f"{where}: invalid expression {source!r}: {_syntax_message(source, error)}", field=where
            ) from None
        except (ValueError, RecursionError, MemoryError) as error:
            raise InvalidArgument(f"{where}: invalid expression {source!r}: {error}", field=where) from None
        if _depth(tree) > MAX_DEPTH:
            raise InvalidArgument(
                f"{where}: the expression is nested more than {MAX_DEPTH} levels deep", field=where
            )
        tree = _Aliases().visit(tree)
        try:
            names = _whitelist(tree)
        except _Refused as error:
            raise InvalidArgument(f"{where}: {error} in {source!r}", field=where) from None
        if kind == "filter":
            _check_filter_shape(tree, source, where)
        expression = cls(source, tree, frozenset(names), kind)
        expression.check({}, frozenset(), where=where)
        return expression

    def check(self, known: Mapping[str, Scalar], dynamic: Set[str], *, where: str) -> None:
        """Fold what is known before any cluster is looked at; refuse certain failures.

        ``known`` are values fixed for the whole request (constants, job parameters);
        names in ``dynamic`` (earlier ``calc`` results) are never taken from ``known``.
        A constant division by zero, a known operand of the wrong type, a result too
        large, or a known filter/calc result of the wrong type raises InvalidArgument.
        """
        try:
            value = _Folder(known, dynamic).fold(self.tree)
            if value is not _UNKNOWN:
                self._check_result(value)
        except _StaticError as error:
            used = sorted(name for name in self.names if name in known and name not in dynamic)
            suffix = ""
            if used:
                suffix = " with job parameters " + ", ".join(f"{name}={short(known[name])}" for name in used)
            raise InvalidArgument(f"{where}: {error} in {self.text!r}{suffix}", field=where) from None

    def _check_result(self, value: Any) -> None:
        if self.kind == "filter" and not isinstance(value, bool):
            raise _StaticError(f"a filter must give a boolean, this gives {_describe(value)}")
        if self.kind == "calc" and not is_scalar(value):
            raise _StaticError(f"the result {short(value)} is not a usable value")

    def evaluate(self, names: Mapping[str, Scalar]) -> Scalar:
        """Evaluate with ``names``; raise :class:`EvaluationError` (never anything else) on failure."""
        evaluator = _evaluator()
        evaluator.names = names
        try:
            value = evaluator.eval(self.text, previously_parsed=self.tree)
        except EVALUATION_ERRORS as error:
            raise EvaluationError(classify(error)) from None
        finally:
            evaluator.names = {}
        if self.kind == "filter":
            if not isinstance(value, bool):
                raise EvaluationError(f"filter result is {_describe(value)}, not a boolean")
        elif not is_scalar(value):
            raise EvaluationError(f"result {short(value)} is not a usable value")
        return value


def _syntax_message(source: str, error: SyntaxError) -> str:
    message = error.msg or "invalid syntax"
    if error.offset:
        message += f" at column {error.offset}"
    hints = []
    if "&&" in source or "||" in source:
        hints.append("use 'and' / 'or'")
    if "!" in source.replace("!=", ""):
        hints.append("use 'not'")
    if hints:
        message += f" ({'; '.join(hints)})"
    return message


def _check_filter_shape(tree: ast.expr, source: str, where: str) -> None:
    """A filter is a condition: refuse tops that can only be numbers or strings."""
    numeric = (
        isinstance(tree, (ast.BinOp, ast.Call))
        or (isinstance(tree, ast.UnaryOp) and not isinstance(tree.op, ast.Not))
        or (isinstance(tree, ast.Constant) and not isinstance(tree.value, bool))
    )
    if numeric:
        raise InvalidArgument(
            f"{where}: a filter must be a condition (a comparison, and/or/not, or a boolean name), "
            f"not a value: {source!r}",
            field=where,
        )


class _Folder:
    """Partial evaluation over known values, with the same operators as evaluation."""

    def __init__(self, known: Mapping[str, Scalar], dynamic: Set[str]) -> None:
        self.known = known
        self.dynamic = dynamic

    @staticmethod
    def _apply(function: Callable[..., Any], *values: Any) -> Any:
        try:
            return function(*values)
        except EVALUATION_ERRORS as error:
            raise _StaticError(classify(error)) from None

    def fold(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.known and node.id not in self.dynamic:
                return self.known[node.id]
            return _UNKNOWN
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            value = self.fold(node.operand)
            return _UNKNOWN if value is _UNKNOWN else self._apply(OPERATORS[type(node.op)], value)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test = self.fold(node.test)
            body = self.fold(node.body)
            orelse = self.fold(node.orelse)
            if test is _UNKNOWN:
                return _UNKNOWN
            if not isinstance(test, bool):
                raise _StaticError(f"wrong type: 'if' needs a boolean condition, got {_describe(test)}")
            return body if test else orelse
        if isinstance(node, ast.Call):
            return self._call(node)
        raise _StaticError(f"{type(node).__name__} is not allowed")

    def _binop(self, node: ast.BinOp) -> Any:
        left = self.fold(node.left)
        right = self.fold(node.right)
        function = OPERATORS[type(node.op)]
        if left is not _UNKNOWN and right is not _UNKNOWN:
            return self._apply(function, left, right)
        symbol = _SYMBOLS[type(node.op)]
        for value in (left, right):
            if value is not _UNKNOWN and not is_number(value):
                raise _StaticError(f"wrong type: '{symbol}' needs numbers, got {_describe(value)}")
        if right is not _UNKNOWN and right == 0 and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            raise _StaticError("division by zero")
        return _UNKNOWN

    def _boolop(self, node: ast.BoolOp) -> Any:
        values = [self.fold(value) for value in node.values]
        symbol = "or" if isinstance(node.op, ast.Or) else "and"
        for value in values:
            if value is not _UNKNOWN and not isinstance(value, bool):
                raise _StaticError(f"wrong type: '{symbol}' needs booleans, got {_describe(value)}")
        if any(value is _UNKNOWN for value in values):
            return _UNKNOWN
        return any(values) if symbol == "or" else all(values)

    def _compare(self, node: ast.Compare) -> Any:
        operands = [self.fold(node.left), *(self.fold(comparator) for comparator in node.comparators)]
        unknown = False
        result = True
        for index, comparison in enumerate(node.ops):
            left, right = operands[index], operands[index + 1]
            if left is not _UNKNOWN and right is not _UNKNOWN:
                result = self._apply(OPERATORS[type(comparison)], left, right) and result
                continue
            unknown = True
            for value in (left, right):
                if value is _UNKNOWN:
                    continue
                if isinstance(comparison, (ast.In, ast.NotIn)):
                    if not isinstance(value, str):
                        raise _StaticError(f"wrong type: 'in' needs strings, got {_describe(value)}")
                elif not isinstance(comparison, (ast.Eq, ast.NotEq)) and not (
                    is_number(value) or isinstance(value, str)
                ):
                    raise _StaticError(
                        f"wrong type: comparison needs numbers or strings, got {_describe(value)}"
                    )
        return _UNKNOWN if unknown else result

    def _call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        args = [self.fold(arg) for arg in node.args]
        if all(arg is not _UNKNOWN for arg in args):
            return self._apply(FUNCTIONS[name], *args)
        for position, arg in enumerate(args):
            if arg is _UNKNOWN:
                continue
            if name in ("min", "max"):
                ok = is_number(arg) or isinstance(arg, str)
            elif name == "round" and position == 1:
                ok = isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) <= MAX_ROUND_DIGITS
            else:
                ok = is_number(arg)
            if not ok:
                raise _StaticError(f"wrong type: {name}() cannot take {_describe(arg)}")
        return _UNKNOWN
