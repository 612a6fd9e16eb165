"""Where a model's spec came from, recorded at training and judged before promotion.

The ML Test Score asks that model specs be "reviewed and submitted". Review is a rule of the
repository (a protected branch with required reviews); what this package can do is make sure that the
spec a model was trained on *is* the submitted one, and say so with the model:

- at training, :func:`spec_provenance` records the sha256 of the spec's content and, when the file lies
  in a git work tree, the repository's HEAD commit, the file's path in the repository, whether git
  tracks it and whether the working copy differs from HEAD. Airflow's versioned DAG bundles
  (``GitDagBundle``) check each version out without its ``.git`` folder, so when git cannot tell and the
  file lies in a versioned bundle, the bundle version is the evidence instead;
- before promotion, :func:`check_spec_provenance` turns those facts into a finding: a spec committed
  and unchanged is ``ok``; a modified, untracked or unknown one is a finding whose severity the
  pipeline file's ``monitoring.spec_review`` chooses (``require``: alert, ``warn``: warn, ``off``: ok).

Git is asked through its command line (:mod:`airflow_mlops.core.git`), each call bounded by a timeout:
git missing, a folder that is not a repository, a repository git refuses to read (another owner) or a
slow disk all give the state ``unknown`` with the reason, never an error that would stop a training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.git import GIT_TIMEOUT_SECONDS, GitUnanswered, run_git
from airflow_mlops.core.monitoring import Finding, Severity
from airflow_mlops.core.pipeline import ReviewMode, parse_review

SpecState = Literal["clean", "modified", "untracked", "unknown"]
_SEVERITY: dict[ReviewMode, Severity] = {"require": "alert", "warn": "warn", "off": "ok"}


@dataclass(frozen=True)
class Bundle:
    """The Airflow DAG bundle a task runs from: its name, its version (None when not versioned) and the
    folder that version covers (the repository's checkout, which may hold more than the DAG folder)."""

    name: str
    version: str | None
    root: str | None


@dataclass(frozen=True)
class SpecProvenance:
    """The facts recorded with a training run about the spec it was trained on."""

    kind: Literal["file", "mapping"]
    source: str | None
    sha256: str
    state: SpecState
    state_by: Literal["git", "bundle"] | None = None
    commit: str | None = None
    repo_path: str | None = None
    tracked: bool | None = None
    modified: bool | None = None
    note: str = ""
    bundle_name: str | None = None
    bundle_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """MLflow tags (``mlops.spec_*``, ``mlops.bundle_*``); unknown facts are left out."""
        values: dict[str, Any] = {
            contracts.TAG_SPEC_KIND: self.kind,
            contracts.TAG_SPEC_SOURCE: self.source,
            contracts.TAG_SPEC_SHA256: self.sha256,
            contracts.TAG_SPEC_STATE: self.state,
            contracts.TAG_SPEC_STATE_BY: self.state_by,
            contracts.TAG_SPEC_COMMIT: self.commit,
            contracts.TAG_SPEC_REPO_PATH: self.repo_path,
            contracts.TAG_SPEC_TRACKED: self.tracked,
            contracts.TAG_SPEC_MODIFIED: self.modified,
            contracts.TAG_SPEC_NOTE: self.note or None,
            contracts.TAG_BUNDLE_NAME: self.bundle_name,
            contracts.TAG_BUNDLE_VERSION: self.bundle_version,
        }
        return {k: _tag_text(v) for k, v in values.items() if v is not None}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> SpecProvenance | None:
        """The provenance a run recorded, or None when it recorded none (a run from before it was
        recorded, or a training that did not go through :func:`spec_provenance`)."""
        sha256 = tags.get(contracts.TAG_SPEC_SHA256)
        if not sha256:
            return None
        state = tags.get(contracts.TAG_SPEC_STATE, "unknown")
        kind = tags.get(contracts.TAG_SPEC_KIND, "file")
        state_by = tags.get(contracts.TAG_SPEC_STATE_BY)
        return cls(
            kind="mapping" if kind == "mapping" else "file",
            source=tags.get(contracts.TAG_SPEC_SOURCE),
            sha256=sha256,
            state=state if state in ("clean", "modified", "untracked") else "unknown",  # type: ignore[arg-type]
            state_by=state_by if state_by in ("git", "bundle") else None,  # type: ignore[arg-type]
            commit=tags.get(contracts.TAG_SPEC_COMMIT),
            repo_path=tags.get(contracts.TAG_SPEC_REPO_PATH),
            tracked=_tag_flag(tags.get(contracts.TAG_SPEC_TRACKED)),
            modified=_tag_flag(tags.get(contracts.TAG_SPEC_MODIFIED)),
            note=tags.get(contracts.TAG_SPEC_NOTE, ""),
            bundle_name=tags.get(contracts.TAG_BUNDLE_NAME),
            bundle_version=tags.get(contracts.TAG_BUNDLE_VERSION),
        )


@dataclass(frozen=True)
class GitFacts:
    """What git says about one file: its state against the repository's HEAD, and why."""

    state: SpecState
    commit: str | None = None
    repo_path: str | None = None
    tracked: bool | None = None
    modified: bool | None = None
    note: str = ""
    toplevel: str | None = None


def spec_provenance(
    spec: Mapping[str, Any] | str | Path,
    *,
    defined_in: str | Path | None = None,
    bundle: Bundle | None = None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> SpecProvenance:
    """The provenance of a spec given as the path of a file, or as a mapping written in ``defined_in``
    (the DAG file: a spec in a DAG file is reviewed with that file).

    :raises SourceNotFoundError: the spec file does not exist.
    :raises SpecError: the spec file cannot be read.
    """
    content, kind, file = _spec_content(spec, defined_in)
    sha256 = hashlib.sha256(content).hexdigest()
    if file is None:
        facts = GitFacts("unknown", note="the spec was given as a mapping from no known file")
    elif not file.is_file():
        facts = GitFacts("unknown", note=f"{str(file)!r} is not a file")
    else:
        facts = git_facts(file, timeout=timeout)
    state_by: Literal["git", "bundle"] | None = "git" if facts.state != "unknown" else None
    if file is not None and bundle is not None:
        from_bundle = _bundle_facts(file, bundle)
        if from_bundle is not None and not _own_repository(facts, bundle):
            facts, state_by = from_bundle, "bundle"
    return SpecProvenance(
        kind=kind,
        source=str(file) if file is not None else None,
        sha256=sha256,
        state=facts.state,
        state_by=state_by,
        commit=facts.commit,
        repo_path=facts.repo_path,
        tracked=facts.tracked,
        modified=facts.modified,
        note=facts.note,
        bundle_name=bundle.name if bundle else None,
        bundle_version=bundle.version if bundle else None,
    )


def _spec_content(
    spec: Mapping[str, Any] | str | Path, defined_in: str | Path | None
) -> tuple[bytes, Literal["file", "mapping"], Path | None]:
    """The bytes a spec's sha256 is taken of, its kind, and the file it was read from or written in.

    :raises SourceNotFoundError: the spec file does not exist.
    :raises SpecError: the spec file cannot be read.
    """
    if isinstance(spec, Mapping):
        content = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
        return content, "mapping", Path(defined_in).resolve() if defined_in else None
    file = Path(str(spec).strip()).resolve()
    try:
        return file.read_bytes(), "file", file
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"The spec file {str(file)!r} does not exist.") from exc
    except OSError as exc:
        raise SpecError(f"The spec file {str(file)!r} cannot be read: {exc}.") from exc


def _bundle_facts(file: Path, bundle: Bundle) -> GitFacts | None:
    """The facts a versioned DAG bundle gives about ``file`` (None: not versioned, or not inside it)."""
    if not (bundle.version and bundle.root):
        return None
    inside = _relative(file, Path(bundle.root))
    if inside is None:
        return None
    note = f"from version {bundle.version} of the DAG bundle {bundle.name!r}"
    return GitFacts("clean", commit=bundle.version, repo_path=inside, note=note)


def _own_repository(facts: GitFacts, bundle: Bundle) -> bool:
    """Whether git answered for a repository inside the bundle's folder, which then speaks for the file.

    A versioned bundle checks out exactly the files of that version (GitDagBundle: a commit of the
    tracked branch) and, by default, removes the checkout's .git folder: git then knows nothing, or
    answers for some repository around the bundle's folder, which says nothing of this file.
    """
    return facts.toplevel is not None and _relative(Path(facts.toplevel), Path(bundle.root or "")) is not None


def git_facts(file: str | Path, *, timeout: float = GIT_TIMEOUT_SECONDS) -> GitFacts:
    """Ask git about ``file``: ``clean`` (tracked, identical to HEAD), ``modified`` (tracked, but the working
    copy or the index differs from HEAD, or nothing is committed yet), ``untracked`` or ``unknown``."""
    path = Path(file).resolve()
    try:
        code, top, error = run_git(path.parent, timeout, "rev-parse", "--show-toplevel")
        if code != 0 or not top:
            return GitFacts("unknown", note=_no_work_tree(path.parent, error))
        toplevel = Path(top).resolve()
        relative = _relative(path, toplevel)
        if relative is None:
            return GitFacts("unknown", note=f"{str(path)!r} lies outside its work tree {str(toplevel)!r}")
        top_text = str(toplevel)
        code, head, _ = run_git(toplevel, timeout, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        commit = head if code == 0 and head else None
        tracked = run_git(toplevel, timeout, "ls-files", "--error-unmatch", "--", relative)[0] == 0
        if not tracked:
            ignored = run_git(toplevel, timeout, "check-ignore", "--quiet", "--", relative)[0] == 0
            note = "not tracked by git" + (" (ignored by .gitignore)" if ignored else "")
            return GitFacts("untracked", commit, relative, tracked=False, note=note, toplevel=top_text)
        if commit is None:
            return GitFacts("modified", None, relative, True, True, "the repository has no commit yet", top_text)
        code, _, error = run_git(toplevel, timeout, "diff", "--quiet", "HEAD", "--", relative)
        if code == 0:
            return GitFacts("clean", commit, relative, True, False, toplevel=top_text)
        if code == 1:
            in_head = run_git(toplevel, timeout, "cat-file", "-e", f"{commit}:{relative}")[0] == 0
            note = "differs from HEAD" if in_head else "staged, not in any commit yet"
            return GitFacts("modified", commit, relative, True, True, note, top_text)
        return GitFacts("unknown", commit, relative, True, None, f"git diff failed: {_first_line(error)}", top_text)
    except GitUnanswered as exc:
        return GitFacts("unknown", note=str(exc))


def check_spec_provenance(provenance: SpecProvenance | None, review: str) -> Finding:
    """Judge a run's spec provenance: committed and unchanged is ``ok``; anything else is a finding of
    the severity ``review`` gives it (``require``: alert, ``warn``: warn, ``off``: ok, still described)."""
    mode = parse_review(review, "The 'review' argument")
    details: dict[str, Any] = {"spec_review": mode, "provenance": provenance.to_dict() if provenance else None}
    if provenance is None:
        problem = (
            "The run records no spec provenance (trained before it was recorded, or not by TrainModelOperator): "
            "nothing shows its spec was submitted."
        )
        return Finding("spec_provenance", _SEVERITY[mode], _prefixed(mode, problem), details)
    where = provenance.repo_path or provenance.source or "the mapping spec"
    digest = provenance.sha256[:12]
    if provenance.state == "clean":
        if provenance.state_by == "bundle":
            message = (
                f"Spec {where} (sha256 {digest}) came from version {provenance.commit} of the DAG bundle "
                f"{provenance.bundle_name!r}."
            )
        else:
            message = f"Spec {where} (sha256 {digest}) is committed at {(provenance.commit or '')[:12]}, unchanged."
        return Finding("spec_provenance", "ok", message, details)
    if provenance.state == "modified":
        at = f"commit {provenance.commit[:12]}" if provenance.commit else "any commit"
        problem = f"Spec {where} (sha256 {digest}) was trained with uncommitted changes: it differs from {at}"
    elif provenance.state == "untracked":
        problem = f"Spec {where} (sha256 {digest}) is not in the repository: it was never submitted"
    else:
        problem = f"Spec {where} (sha256 {digest}): whether it was submitted is unknown"
    if provenance.note:
        problem += f": {provenance.note}" if provenance.state == "unknown" else f" ({provenance.note})"
    return Finding("spec_provenance", _SEVERITY[mode], _prefixed(mode, problem + "."), details)


def _prefixed(mode: ReviewMode, message: str) -> str:
    return f"Not judged (spec_review: off): {message}" if mode == "off" else message


def _relative(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _no_work_tree(folder: Path, error: str) -> str:
    if "dubious ownership" in error:  # a checkout of another user: git refuses it unless told otherwise
        return f"git refuses the repository of {str(folder)!r} ({_first_line(error)}): add it to safe.directory"
    return f"{str(folder)!r} is not in a git work tree ({_first_line(error)})"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "no message"


def _tag_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _tag_flag(value: str | None) -> bool | None:
    return None if value is None else value == "true"
