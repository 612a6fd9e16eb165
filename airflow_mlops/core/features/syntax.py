"""The syntax of derived-feature expressions: tokens, a recursive-descent parser and the tree it builds.

Only the shapes of the grammar exist here; which functions are allowed, the types and the SQL they
compile to are :mod:`.grammar`'s. The grammar::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := add (("=" | "!=" | "<" | "<=" | ">" | ">=") add)?
    add     := mul (("+" | "-") mul)*
    mul     := unary (("*" | "/") unary)*
    unary   := "-" unary | primary
    primary := number | 'string' | true | false | null | name | name "(" args ")" | "(" expr ")"
               | "[" number ("," number)* "]"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from airflow_mlops.core.errors import SpecError

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(?P<string>'(?:[^']|'')*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|!=|<>|[-+*/=<>(),\[\]]))"
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression: ``kind`` is literal, column, call, unary, binary or list."""

    kind: str
    value: object = None
    args: tuple[Node, ...] = ()


def tokenize(text: str, where: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs; anything the grammar has no token for is refused."""
    tokens, position = [], 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise SpecError(
                f"{where}: unexpected {stripped[position:position + 12]!r} at character {position + 1} of "
                f"{text!r}. Expressions use column names, numbers, 'quoted strings', + - * /, comparisons, "
                "and/or/not and the listed functions (docs/features.md)."
            )  # fmt: skip
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text, self.where = text, where
        self.tokens = tokenize(text, where)
        self.position = 0

    def fail(self, message: str) -> SpecError:
        return SpecError(f"{self.where}: {message} in {self.text!r}.")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1].lower() != expected):
            found = "the end" if token is None else repr(token[1])
            raise self.fail(f"expected {expected or 'a value'!r}, found {found}")
        self.position += 1
        return token

    def at(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] in ("op", "name") and token[1].lower() in words

    def parse(self) -> Node:
        if not self.tokens:
            raise self.fail("the expression is empty")
        node = self.logical("or", self.logical_and)
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()[1]!r} after a complete expression")  # type: ignore[index]
        return node

    def logical(self, word: str, operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.at(word):
            self.take()
            node = Node("binary", word, (node, operand()))
        return node

    def logical_and(self) -> Node:
        return self.logical("and", self.negation)

    def negation(self) -> Node:
        if self.at("not"):
            self.take()
            return Node("unary", "not", (self.negation(),))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.binary(("+", "-"), self.product)
        if self.at("=", "!=", "<>", "<", "<=", ">", ">="):
            operator = self.take()[1].replace("<>", "!=")
            node = Node("binary", operator, (node, self.binary(("+", "-"), self.product)))
        return node

    def binary(self, operators: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.at(*operators):
            node = Node("binary", self.take()[1], (node, operand()))
        return node

    def product(self) -> Node:
        return self.binary(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.at("-"):
            self.take()
            return Node("unary", "-", (self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Node("literal", float(text))
        if kind == "string":
            return Node("literal", text[1:-1].replace("''", "'"))
        if kind == "name":
            lowered = text.lower()
            if lowered in ("true", "false"):
                return Node("literal", lowered == "true")
            if lowered == "null":
                return Node("literal", None)
            if lowered in _KEYWORDS:
                raise self.fail(f"{text!r} cannot start a value")
            if self.at("("):
                return self.call(lowered)
            return Node("column", text)
        if text == "(":
            node = self.logical("or", self.logical_and)
            self.take(")")
            return node
        if text == "[":
            return self.number_list()
        raise self.fail(f"unexpected {text!r}")

    def call(self, name: str) -> Node:
        self.take("(")
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.logical("or", self.logical_and))
            while self.at(","):
                self.take()
                args.append(self.logical("or", self.logical_and))
        self.take(")")
        return Node("call", name, tuple(args))

    def number_list(self) -> Node:
        values: list[Node] = []
        while True:
            negative = self.at("-") and bool(self.take())
            kind, text = self.take()
            if kind != "number":
                raise self.fail(f"a list holds numbers only; found {text!r}")
            values.append(Node("literal", -float(text) if negative else float(text)))
            if self.at("]"):
                self.take()
                return Node("list", None, tuple(values))
            self.take(",")


def parse_tree(text: str, where: str) -> Node:
    """The tree of one expression, before its functions are checked; :class:`SpecError` naming ``where``
    when it does not fit the grammar."""
    return _Parser(text, where).parse()


def walk(node: Node) -> list[Node]:
    """Every node of a tree, root first."""
    found = [node]
    for child in node.args:
        found += walk(child)
    return found


def columns_of(node: Node) -> list[str]:
    """The column names an expression reads, in order of first use."""
    return list(dict.fromkeys(str(n.value) for n in walk(node) if n.kind == "column"))
