"""A read-only check of a SQL source query, made before anything reaches the database.

An ingestion query must only read. PostgreSQL enforces it with a read-only transaction, but other
databases do not (SQLite happily runs ``DELETE ... RETURNING *`` and hands back the deleted rows), and
even PostgreSQL answers a writing query wrapped in a cursor with a bare "syntax error". So the statement
is checked first: one statement, starting with ``SELECT``, ``WITH``, ``VALUES`` or ``TABLE``, and no
writing keyword anywhere, data-modifying CTEs (``WITH d AS (DELETE ...) SELECT ...``) and
``SELECT ... INTO`` included.

The check tokenizes the query, skipping comments and literals. Databases disagree on where a comment or a
literal ends (nested ``/* */``, ``#`` comments, backslash escapes, ``$tag$`` quoting, ``[name]``
identifiers), and a lexer that guesses wrong could hide a ``DELETE`` inside what it takes for a literal.
So the query is scanned once under every combination of these conventions, and refused if any scan finds
a write: whatever the database's own rules, one of the scans read it the same way.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from airflow_mlops.core.errors import SpecError

READING_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
# Words that only a writing statement holds. Other statements (EXPLAIN ANALYZE, PRAGMA, SET, DO ...) are
# refused by their first word. PostgreSQL allows INSERT/UPDATE/DELETE/MERGE inside a WITH; ``INTO`` catches
# ``SELECT ... INTO new_table``; ``UPDATE`` also catches ``SELECT ... FOR UPDATE`` row locks. Function
# names that are also verbs elsewhere (``replace()``) are left out on purpose.
WRITING_WORDS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "TRUNCATE", "DROP", "ALTER", "CREATE", "GRANT",
        "REVOKE", "COPY", "CALL", "EXEC", "EXECUTE",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class _Lexing:
    """One convention of where comments, literals and quoted identifiers end."""

    nested_comments: bool  # PostgreSQL: /* /* */ */ is one comment
    hash_comments: bool  # MySQL: '#' starts a comment
    backslash_escapes: bool  # MySQL, PostgreSQL E'...': \' does not end a literal
    dollar_quotes: bool  # PostgreSQL: $tag$ ... $tag$ is a literal
    bracket_names: bool  # SQLite, SQL Server: [name] is an identifier


_LEXINGS = tuple(_Lexing(*flags) for flags in itertools.product((False, True), repeat=5))


def check_read_only(query: str) -> None:
    """Refuse a query that is not one reading statement; the message names what was found.

    Raises :class:`SpecError`, before any connection is made.
    """
    for lexing in _LEXINGS:
        _check_tokens(_tokens(query, lexing), query)


def _check_tokens(tokens: list[str], query: str) -> None:
    shown = " ".join(query.split())
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    expected = "Expected one statement starting with SELECT, WITH, VALUES or TABLE"
    words = [t for t in tokens if t != "("]
    if not words or words[0] not in READING_STARTS:
        first = words[0] if words else "nothing"
        raise SpecError(
            f"A source query must only read; this one starts with {first} ({shown!r}). {expected}, "
            "without writing anything."
        )
    if ";" in tokens and any(t != ";" for t in tokens[tokens.index(";") :]):
        raise SpecError(f"A source query must be one statement; this one has several ({shown!r}). {expected}.")
    writing = sorted({t for t in words if t in WRITING_WORDS})
    if writing:
        raise SpecError(
            f"A source query must only read; this one contains the data-modifying keyword(s) {', '.join(writing)} "
            f"({shown!r}). {expected} "
            "and no INSERT, UPDATE, DELETE, MERGE, SELECT ... INTO, FOR UPDATE or DDL anywhere, CTEs included. "
            "If a column is named like one of these words, write it as a quoted identifier."
        )


def _tokens(query: str, lexing: _Lexing) -> list[str]:
    """Upper-cased words and the punctuation ``(`` and ``;`` of ``query``, outside comments and literals."""
    tokens: list[str] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif query.startswith("--", i) or (c == "#" and lexing.hash_comments):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
        elif query.startswith("/*", i):
            i = _comment_end(query, i, lexing.nested_comments)
        elif c in "'\"`" or (c == "[" and lexing.bracket_names):
            i = _quoted_end(query, i, "]" if c == "[" else c, lexing.backslash_escapes and c in "'\"")
        elif c == "$" and lexing.dollar_quotes and (tag := _DOLLAR_TAG.match(query, i)):
            end = query.find(tag.group(0), tag.end())
            i = n if end < 0 else end + len(tag.group(0))
        elif word := _WORD.match(query, i):
            tokens.append(word.group(0).upper())
            i = word.end()
        else:
            if c in "(;":
                tokens.append(c)
            i += 1
    return tokens


def _comment_end(query: str, start: int, nested: bool) -> int:
    depth, i = 0, start
    while i < len(query):
        if query.startswith("/*", i) and (nested or depth == 0):
            depth, i = depth + 1, i + 2
        elif query.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(query)


def _quoted_end(query: str, start: int, close: str, backslash: bool) -> int:
    """The index after a literal or quoted identifier opened at ``start`` (a doubled ``close`` escapes it)."""
    i = start + 1
    while i < len(query):
        c = query[i]
        if backslash and c == "\\":
            i += 2
        elif c == close:
            if query.startswith(close * 2, i) and close != "]":
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(query)
