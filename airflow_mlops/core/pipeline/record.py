"""A record of the pipeline files that passed their costly checks, so that DAG parses skip them while the
file is unchanged.

DAG files read every pipeline file at every parse (a DAG processor parses each DAG file every 30 s by
default, each time in a fresh process). Two checks of a pipeline file need modules the rest of the parse
does not: its features against its ``feature_requirements`` (the training spec's feature readers and the
feature transforms' grammar, to know what each transform reads) and its ``business`` section (the business
metric's module). Importing those modules cost more than reading and checking everything else.

After a file passes them, one small JSON file per pipeline file records it: a key over the file's content,
its feature requirements as resolved (the suite's columns included) and the code of the checks, with the
checked business section. A parse whose key matches takes the business section from the record and does
not import those modules; any change to the file, its suite's columns or the checking code changes the key,
and the checks run again. A file that fails is never recorded, so its error shows at every parse. The
record is a cache: it cannot be read or written (a read-only folder, a half-written entry) means the checks
simply run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The modules whose code decides the checks the record stands for: a change to any of them (a new check, a
# fixed one) changes the key. Located without importing them, which is the point.
CHECK_MODULES = (
    "airflow_mlops.core.pipeline.file",
    "airflow_mlops.core.pipeline.requirements",
    "airflow_mlops.core.pipeline.business",
    "airflow_mlops.core.training.spec_fields",
    "airflow_mlops.core.training.spec_sections",
    "airflow_mlops.core.features.spec",
    "airflow_mlops.core.features.grammar",
)


class CheckRecord:
    """The checked pipeline files of one folder (``[mlops] checked_pipelines_folder`` for the reference DAGs).

    :param folder: where the entries are kept (created on the first write).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._code: str | None = None

    def key(self, raw: Mapping[str, Any], resolved: Mapping[str, Any]) -> str | None:
        """The key of a file's checks: its parsed content (in file order), what the checks resolved from
        outside it (the suite's columns), and the checking code. None for content JSON cannot hold (a
        mapping keyed by dates, say): such a file is checked in full at every parse."""
        try:
            document = json.dumps([raw, resolved, self._code_signature()], default=str)
        except (TypeError, ValueError):
            return None
        return hashlib.sha256(document.encode("utf-8")).hexdigest()

    def get(self, path: Path, key: str) -> dict[str, Any] | None:
        """The recorded results of ``path`` under ``key``; None when it was not checked as it is now."""
        try:
            entry = json.loads(self._entry(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("results"), dict):
            return None
        return dict(entry["results"])

    def put(self, path: Path, key: str, results: Mapping[str, Any]) -> None:
        """Record that ``path`` passed under ``key``, with its checked ``results`` (JSON-able); atomic, and
        silent when the folder cannot be written."""
        target = self._entry(path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"key": key, "file": str(path), "results": dict(results)}), "utf-8")
            os.replace(temporary, target)  # a reader sees the old entry or the new one, never half of one
        except (OSError, TypeError, ValueError):
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)

    def _entry(self, path: Path) -> Path:
        """One entry per pipeline file (overwritten when it changes), named by its absolute path."""
        name = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def _code_signature(self) -> str:
        if self._code is None:
            from airflow_mlops import __version__

            stamps = [__version__]
            for module in CHECK_MODULES:
                try:
                    spec = importlib.util.find_spec(module)
                    stat = os.stat(spec.origin) if spec is not None and spec.origin else None
                except (ImportError, OSError, ValueError):
                    stat = None
                stamps.append(f"{module}:{stat.st_mtime_ns}:{stat.st_size}" if stat else f"{module}:-")
            self._code = "|".join(stamps)
        return self._code
