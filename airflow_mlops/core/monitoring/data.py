"""Checks on the data a model reads: an upstream source's columns and types against those the champion
was trained on (:func:`check_schema_change`), and text columns that look like personal data
(:func:`check_personal_data`). Pure functions returning a
:class:`~airflow_mlops.core.monitoring.findings.Finding`."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from airflow_mlops.core.monitoring.findings import Finding


def check_schema_change(
    before: Mapping[str, str], after: Mapping[str, str], *, features: Collection[str] = ()
) -> Finding:
    """Compare a source's ``{column: type}`` with the one the champion was trained on.

    A removed or retyped model feature is an ``alert`` (scoring would fail or mis-read it); any other
    change (a new column, a non-feature column gone) is a ``warn``: upstream changed, people should know.
    """
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    retyped = {
        c: {"before": before[c], "after": after[c]} for c in sorted(set(before) & set(after)) if before[c] != after[c]
    }
    breaking = sorted((set(removed) | set(retyped)) & set(features))
    details = {"added": added, "removed": removed, "retyped": retyped, "breaking_features": breaking}
    if not (added or removed or retyped):
        return Finding("source_schema", "ok", f"The source schema ({len(after)} columns) is unchanged.", details)
    parts = [
        f"{label} {names}"
        for label, names in (("added", added), ("removed", removed), ("retyped", sorted(retyped)))
        if names
    ]
    message = "Upstream source schema changed: " + "; ".join(parts) + "."
    if breaking:
        return Finding("source_schema", "alert", message + f" Model feature(s) affected: {breaking}.", details)
    return Finding("source_schema", "warn", message, details)


# -- personal data in a snapshot ----------------------------------------------------------------------------
_PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"),
    "phone": re.compile(r"^\+?\d{1,3}?[\s.-]?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}$"),
    "payment_card": re.compile(r"^\d{4}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{1,7}$"),
    "us_ssn": re.compile(r"^\d{3}-\d{2}-\d{4}$"),
    "ipv4": re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$"),
}
_PII_NAMES = re.compile(
    r"(^|_)(e?mail|phone|mobile|ssn|passport|birth|dob|address|"
    r"(first|last|full|given|family|passenger|customer|user|person|patient)_?name)($|_)"
)


def _luhn(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return len(digits) >= 13 and total % 10 == 0


def check_personal_data(
    columns: Mapping[str, Sequence[Any]], *, allow: Collection[str] = (), min_share: float = 0.05
) -> Finding:
    """Alert when a text column looks like personal data: its name (``email``, ``phone``, ``first_name``
    ...) or the share of its values matching an email, phone, payment card (Luhn-checked), US SSN or
    IPv4 pattern (at least ``min_share`` of the non-empty values). Columns in ``allow`` were reviewed
    and are skipped. A detector, not an access control: it keeps such columns from flowing into
    training snapshots and serving logs unnoticed.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, values in columns.items():
        if name in allow:
            continue
        texts = [str(v).strip() for v in values if v is not None and str(v).strip() not in ("", "nan", "None")]
        hits: dict[str, float] = {}
        for kind, pattern in _PII_PATTERNS.items():
            matched = [t for t in texts if pattern.match(t) and (kind != "payment_card" or _luhn(t))]
            if texts and len(matched) / len(texts) >= min_share:
                hits[kind] = round(len(matched) / len(texts), 4)
        if hits or _PII_NAMES.search(name.lower()):
            found[name] = {"patterns": hits, "name_suggests_personal_data": bool(_PII_NAMES.search(name.lower()))}
    details = {"columns_checked": len(columns), "allowed": sorted(allow), "suspect": found, "min_share": min_share}
    if found:
        listed = ", ".join(f"{n} ({', '.join(c['patterns']) or 'by name'})" for n, c in sorted(found.items()))
        return Finding("personal_data", "alert", f"Column(s) that look like personal data: {listed}.", details)
    return Finding("personal_data", "ok", f"No personal data pattern in {len(columns)} text column(s).", details)
