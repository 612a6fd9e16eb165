"""File-name patterns of a source: one glob dialect for the spec's validation, the file listing and the
sensor's probe. A leaf (no pyarrow), so the spec can check a pattern without importing the readers."""

from __future__ import annotations

import re

from airflow_mlops.core.errors import SpecError


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob (``*``, ``?``, ``[...]``, ``**`` across folders) into an anchored regex."""
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise SpecError(f"The 'pattern' must be relative to 'path' without '..'. Got {pattern!r} instead.")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise SpecError(f"The 'pattern' {pattern!r} is not a valid glob: {exc}.") from exc
