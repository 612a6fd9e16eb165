"""The expression grammar of derived features: a small, whitelisted language compiled to DuckDB SQL.

Users never write SQL. An expression is parsed (:mod:`.syntax`) into a tree of literals, column names,
operators and calls; a call of anything but the functions in :data:`FUNCTIONS` is refused here with the
feature's name, as is anything the syntax has no place for (a subquery, a quoted identifier, a
semicolon). The tree is then type-checked and compiled to one SQL expression, with every column name
quoted, so the SQL that runs is generated, never taken from the user.

Types: ``number``, ``string``, ``boolean``, ``timestamp`` and ``any`` (a column whose type is not
known yet: checked again against the data's schema when the transforms run).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.features.syntax import Node, parse_tree, walk

Kind = Literal["number", "string", "boolean", "timestamp", "any", "list"]


def parse(text: str, where: str) -> Node:
    """The tree of one expression; :class:`SpecError` (naming ``where``) when it is not in the grammar."""
    if not isinstance(text, str):
        raise SpecError(f"{where} must be an expression string. Got {text!r} instead.")
    tree = parse_tree(text, where)
    unknown = sorted({n.value for n in walk(tree) if n.kind == "call" and n.value not in FUNCTIONS}, key=str)
    if unknown:
        raise SpecError(f"{where}: unknown function(s) {unknown} in {text!r}. Allowed functions: {sorted(FUNCTIONS)}.")
    return tree


# -- types and SQL ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Typed:
    """A compiled subexpression: its SQL and its type."""

    sql: str
    kind: Kind


@dataclass(frozen=True)
class Scope:
    """What a compilation may read: column -> SQL and type, and how to turn a timestamp into local time.

    :param local_time: (timestamp SQL, column it came from or None, zone) -> SQL of the wall-clock time in
        that zone; it raises when the column's own zone is not known.
    """

    columns: Mapping[str, Typed]
    local_time: Callable[[Typed, str | None, str], str]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> Typed:
    if value is None:
        return Typed("NULL", "any")
    if isinstance(value, bool):
        return Typed("TRUE" if value else "FALSE", "boolean")
    if isinstance(value, float):
        return Typed(repr(value), "number")
    return Typed("'" + str(value).replace("'", "''") + "'", "string")


def _expect(typed: Typed, kinds: Sequence[Kind], what: str, where: str) -> None:
    if typed.kind != "any" and typed.kind not in kinds:
        raise SpecError(f"{where}: {what} must be {' or '.join(kinds)}; it is {typed.kind}.")


def compile_node(node: Node, scope: Scope, where: str) -> Typed:
    """The SQL and type of ``node``; :class:`SpecError` naming ``where`` on a type mismatch."""
    if node.kind == "literal":
        return _literal(node.value)
    if node.kind == "column":
        name = str(node.value)
        if name not in scope.columns:
            raise SpecError(f"{where}: unknown column {name!r}. Columns it may read: {sorted(scope.columns)}.")
        return scope.columns[name]
    if node.kind == "list":
        return Typed("", "list")
    if node.kind == "unary":
        operand = compile_node(node.args[0], scope, where)
        if node.value == "not":
            _expect(operand, ("boolean",), "the operand of 'not'", where)
            return Typed(f"(NOT {operand.sql})", "boolean")
        _expect(operand, ("number",), "the operand of unary '-'", where)
        return Typed(f"(-{operand.sql})", "number")
    if node.kind == "binary":
        return _binary(str(node.value), compile_node(node.args[0], scope, where),
                       compile_node(node.args[1], scope, where), where)  # fmt: skip
    function = FUNCTIONS[str(node.value)]
    return function(node, scope, where)


def _binary(operator: str, left: Typed, right: Typed, where: str) -> Typed:
    if operator in ("and", "or"):
        for side in (left, right):
            _expect(side, ("boolean",), f"each side of '{operator}'", where)
        return Typed(f"({left.sql} {operator.upper()} {right.sql})", "boolean")
    if operator in ("=", "!=", "<", "<=", ">", ">="):
        if "any" not in (left.kind, right.kind) and left.kind != right.kind:
            raise SpecError(f"{where}: '{operator}' compares {left.kind} with {right.kind}; both sides need one type.")
        return Typed(f"({left.sql} {operator} {right.sql})", "boolean")
    for side in (left, right):
        _expect(side, ("number",), f"each side of '{operator}'", where)
    if operator == "/":  # a zero denominator gives a missing value, never an infinity
        return Typed(f"(CASE WHEN {right.sql} = 0 THEN NULL ELSE {left.sql} / {right.sql} END)", "number")
    return Typed(f"({left.sql} {operator} {right.sql})", "number")


# -- the whitelisted functions ----------------------------------------------------------------------
def _arguments(node: Node, count: int, where: str) -> tuple[Node, ...]:
    if len(node.args) != count:
        raise SpecError(f"{where}: {node.value}() takes {count} argument(s); {len(node.args)} given.")
    return node.args


def _zone(node: Node, where: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if node.kind != "literal" or not isinstance(node.value, str):
        raise SpecError(f"{where}: the time zone must be a quoted IANA name such as 'America/New_York'.")
    try:
        ZoneInfo(node.value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"{where}: {node.value!r} is not a known IANA time zone.") from exc
    return node.value


def _time_part(part: str) -> Callable[[Node, Scope, str], Typed]:
    def compile_part(node: Node, scope: Scope, where: str) -> Typed:
        timestamp, zone = _arguments(node, 2, where)
        typed = compile_node(timestamp, scope, where)
        _expect(typed, ("timestamp",), f"the first argument of {node.value}()", where)
        source = str(timestamp.value) if timestamp.kind == "column" else None
        local = scope.local_time(typed, source, _zone(zone, where))
        if part == "weekend":
            return Typed(f"CAST(isodow({local}) >= 6 AS INTEGER)", "number")
        return Typed(f"{part}({local})", "number")

    return compile_part


def _numeric(template: str, count: int = 1) -> Callable[[Node, Scope, str], Typed]:
    def compile_numeric(node: Node, scope: Scope, where: str) -> Typed:
        args = [compile_node(a, scope, where) for a in _arguments(node, count, where)]
        for position, typed in enumerate(args, 1):
            _expect(typed, ("number",), f"argument {position} of {node.value}()", where)
        return Typed(template.format(*(a.sql for a in args)), "number")

    return compile_numeric


def _text(template: str) -> Callable[[Node, Scope, str], Typed]:
    def compile_text(node: Node, scope: Scope, where: str) -> Typed:
        (arg,) = (compile_node(a, scope, where) for a in _arguments(node, 1, where))
        _expect(arg, ("string",), f"the argument of {node.value}()", where)
        return Typed(template.format(arg.sql), "string")

    return compile_text


def _bucket(node: Node, scope: Scope, where: str) -> Typed:
    value, edges = _arguments(node, 2, where)
    typed = compile_node(value, scope, where)
    _expect(typed, ("number",), "the first argument of bucket()", where)
    if edges.kind != "list":
        raise SpecError(f"{where}: bucket() takes a list of increasing edges, such as bucket(x, [0, 10, 100]).")
    numbers = [float(e.value) for e in edges.args]  # type: ignore[arg-type]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise SpecError(f"{where}: the edges of bucket() must increase strictly. Got {numbers}.")
    cases = " ".join(f"WHEN {typed.sql} < {edge!r} THEN {index}" for index, edge in enumerate(numbers))
    return Typed(f"(CASE WHEN {typed.sql} IS NULL THEN NULL {cases} ELSE {len(numbers)} END)", "number")


def _same_type(node: Node, scope: Scope, where: str, first: int) -> tuple[list[Typed], Kind]:
    args = [compile_node(a, scope, where) for a in node.args]
    kinds = {a.kind for a in args[first:]} - {"any"}
    if len(kinds) > 1:
        raise SpecError(f"{where}: the values of {node.value}() must share one type; got {sorted(kinds)}.")
    return args, next(iter(kinds), "any")


def _if(node: Node, scope: Scope, where: str) -> Typed:
    _arguments(node, 3, where)
    (condition, then, otherwise), kind = _same_type(node, scope, where, 1)
    _expect(condition, ("boolean",), "the condition of if()", where)
    return Typed(f"(CASE WHEN {condition.sql} THEN {then.sql} ELSE {otherwise.sql} END)", kind)


def _coalesce(node: Node, scope: Scope, where: str) -> Typed:
    if len(node.args) < 2:
        raise SpecError(f"{where}: coalesce() takes at least two arguments.")
    args, kind = _same_type(node, scope, where, 0)
    return Typed(f"coalesce({', '.join(a.sql for a in args)})", kind)


def _is_null(node: Node, scope: Scope, where: str) -> Typed:
    (arg,) = (compile_node(a, scope, where) for a in _arguments(node, 1, where))
    return Typed(f"({arg.sql} IS NULL)", "boolean")


def _round(node: Node, scope: Scope, where: str) -> Typed:
    value, digits = _arguments(node, 2, where)
    if digits.kind != "literal" or not isinstance(digits.value, float) or digits.value != int(digits.value):
        raise SpecError(f"{where}: the second argument of round() must be a whole number of digits.")
    typed = compile_node(value, scope, where)
    _expect(typed, ("number",), "the first argument of round()", where)
    return Typed(f"round({typed.sql}, {int(digits.value)})", "number")


FUNCTIONS: dict[str, Callable[[Node, Scope, str], Typed]] = {
    "day_of_week": _time_part("isodow"),  # 1 = Monday ... 7 = Sunday
    "hour": _time_part("hour"),
    "month": _time_part("month"),
    "day_of_year": _time_part("dayofyear"),
    "is_weekend": _time_part("weekend"),
    "log": _numeric("(CASE WHEN {0} > 0 THEN ln({0}) END)"),
    "log1p": _numeric("(CASE WHEN {0} > -1 THEN ln(1 + {0}) END)"),
    "sqrt": _numeric("(CASE WHEN {0} >= 0 THEN sqrt({0}) END)"),
    "abs": _numeric("abs({0})"),
    "clip": _numeric("(CASE WHEN {0} IS NULL THEN NULL ELSE least(greatest({0}, {1}), {2}) END)", 3),
    "ratio": _numeric("(CASE WHEN {1} = 0 THEN NULL ELSE {0} / {1} END)", 2),
    "round": _round,
    "bucket": _bucket,
    "lower": _text("lower({0})"),
    "upper": _text("upper({0})"),
    "trim": _text("trim({0})"),
    "normalize": _text("lower(trim({0}))"),
    "if": _if,
    "coalesce": _coalesce,
    "is_null": _is_null,
}
