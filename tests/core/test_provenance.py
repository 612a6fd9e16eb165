"""Spec provenance against real git repositories in temporary folders, and the verdict on it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.pipeline import parse_review
from airflow_mlops.core.provenance import (
    Bundle,
    SpecProvenance,
    check_spec_provenance,
    git_facts,
    spec_provenance,
)

SPEC = "training:\n  task: binary\n  target: late\n"


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No repository around tmp_path is found, and commits need no user configuration."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for prefix in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{prefix}_NAME", "Pipeline Owner")
        monkeypatch.setenv(f"{prefix}_EMAIL", "owner@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose pipelines/spec.yaml is committed."""
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "spec.yaml").write_text(SPEC)
    (root / ".gitignore").write_text("scratch/\n")
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "spec")
    return root


def test_a_committed_unchanged_spec_is_clean(repo: Path) -> None:
    spec = repo / "pipelines" / "spec.yaml"
    found = spec_provenance(str(spec))
    assert found.state == "clean" and found.state_by == "git"
    assert found.commit == git(repo, "rev-parse", "HEAD")
    assert found.repo_path == "pipelines/spec.yaml" and found.tracked is True and found.modified is False
    assert found.sha256 == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert found.kind == "file" and found.source == str(spec.resolve())
    # Touching the file without changing it keeps it clean: git compares content, not times.
    os.utime(spec, (1, 1))
    assert git_facts(spec).state == "clean"


def test_an_edited_spec_is_modified_until_committed(repo: Path) -> None:
    spec = repo / "pipelines" / "spec.yaml"
    first = git(repo, "rev-parse", "HEAD")
    committed_sha256 = spec_provenance(spec).sha256
    spec.write_text(SPEC + "  seed: 7\n")
    edited = spec_provenance(spec)
    assert (edited.state, edited.modified, edited.note, edited.commit) == ("modified", True, "differs from HEAD", first)
    assert edited.sha256 == hashlib.sha256(spec.read_bytes()).hexdigest() != committed_sha256
    git(repo, "add", "pipelines/spec.yaml")  # staged is still not submitted
    assert spec_provenance(spec).state == "modified"
    git(repo, "commit", "--quiet", "-m", "seed")
    committed = spec_provenance(spec)
    assert committed.state == "clean" and committed.commit == git(repo, "rev-parse", "HEAD") != first


def test_new_files_are_untracked_or_staged_but_never_clean(repo: Path) -> None:
    new = repo / "pipelines" / "new.yaml"
    new.write_text(SPEC)
    found = spec_provenance(new)
    assert (found.state, found.tracked, found.note) == ("untracked", False, "not tracked by git")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "try.yaml").write_text(SPEC)
    assert spec_provenance(repo / "scratch" / "try.yaml").note == "not tracked by git (ignored by .gitignore)"
    git(repo, "add", "pipelines/new.yaml")
    staged = spec_provenance(new)
    assert (staged.state, staged.tracked, staged.note) == ("modified", True, "staged, not in any commit yet")


def test_a_repository_without_commits_has_nothing_submitted(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "spec.yaml").write_text(SPEC)
    git(root, "init", "--quiet")
    git(root, "add", "spec.yaml")
    found = spec_provenance(root / "spec.yaml")
    assert (found.state, found.commit, found.note) == ("modified", None, "the repository has no commit yet")


def test_outside_any_repository_the_state_is_unknown_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    spec = tmp_path / "loose" / "spec.yaml"
    spec.write_text(SPEC)
    found = spec_provenance(spec)
    assert found.state == "unknown" and found.state_by is None and found.commit is None
    assert "is not in a git work tree" in found.note and "not a git repository" in found.note
    assert found.sha256 == hashlib.sha256(SPEC.encode()).hexdigest()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a repository to another user needs root")
def test_a_repository_of_another_user_is_unknown_with_the_remedy(repo: Path) -> None:
    for folder, _, files in os.walk(repo):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, 65534, 65534)
    found = spec_provenance(repo / "pipelines" / "spec.yaml")
    assert found.state == "unknown" and "dubious ownership" in found.note
    assert found.note.endswith("add it to safe.directory")


def test_without_git_or_with_a_hanging_git_the_state_is_unknown(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = repo / "pipelines" / "spec.yaml"
    sleep = shutil.which("sleep")
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert spec_provenance(spec).note == "git is not installed (no 'git' on PATH)"
    hanging = tmp_path / "slow-bin"
    hanging.mkdir()
    (hanging / "git").write_text(f"#!/bin/sh\nexec {sleep} 30\n")
    (hanging / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(hanging))
    found = spec_provenance(spec, timeout=0.5)
    assert (found.state, found.note) == ("unknown", "'git rev-parse' did not answer within 0.5 s")


def test_a_mapping_spec_is_judged_by_the_dag_file_it_is_written_in(repo: Path) -> None:
    dag_file = repo / "dag.py"
    dag_file.write_text("spec = {...}\n")
    spec = {"task": "binary", "target": "late", "estimator": {"type": "lightgbm"}}
    found = spec_provenance(spec, defined_in=str(dag_file))
    assert (found.kind, found.state, found.repo_path) == ("mapping", "untracked", "dag.py")
    reordered = {"estimator": {"type": "lightgbm"}, "target": "late", "task": "binary"}
    assert spec_provenance(reordered, defined_in=str(dag_file)).sha256 == found.sha256
    assert spec_provenance({**spec, "seed": 1}, defined_in=str(dag_file)).sha256 != found.sha256
    git(repo, "add", "dag.py")
    git(repo, "commit", "--quiet", "-m", "dag")
    assert spec_provenance(spec, defined_in=dag_file).state == "clean"
    nowhere = spec_provenance(spec)
    assert (nowhere.state, nowhere.source, nowhere.note) == (
        "unknown",
        None,
        "the spec was given as a mapping from no known file",
    )


def test_a_versioned_bundle_vouches_for_its_files_when_git_cannot(repo: Path, tmp_path: Path) -> None:
    """GitDagBundle checks a version out without its .git folder: the bundle version is the evidence."""
    checkout = tmp_path / "dag_bundles" / "versions" / "abc123"
    (checkout / "include").mkdir(parents=True)
    spec = checkout / "include" / "spec.yaml"
    spec.write_text(SPEC)
    versioned = Bundle(name="dags", version="abc123", root=str(checkout))
    found = spec_provenance(spec, bundle=versioned)
    assert (found.state, found.state_by, found.commit) == ("clean", "bundle", "abc123")
    assert found.repo_path == "include/spec.yaml"
    assert (found.bundle_name, found.bundle_version) == ("dags", "abc123")
    assert "from version abc123 of the DAG bundle 'dags'" in check_spec_provenance(found, "require").message
    # Not versioned (a LocalDagBundle), or the file outside the bundle: nothing vouches for it.
    assert spec_provenance(spec, bundle=Bundle("dags", None, str(checkout))).state == "unknown"
    assert spec_provenance(spec, bundle=Bundle("dags", "abc123", str(tmp_path / "elsewhere"))).state == "unknown"
    # A repository around the bundle's folder says nothing of the bundle's files: the bundle wins.
    nested = repo / "bundle"
    nested.mkdir()
    (nested / "spec.yaml").write_text(SPEC)
    inner = spec_provenance(nested / "spec.yaml", bundle=Bundle("dags", "abc123", str(nested)))
    assert (inner.state, inner.state_by) == ("clean", "bundle")
    # The bundle's own checkout kept its .git folder: git answers, and an edit shows.
    (repo / "pipelines" / "spec.yaml").write_text(SPEC + "# edited\n")
    own = spec_provenance(repo / "pipelines" / "spec.yaml", bundle=Bundle("dags", "abc123", str(repo)))
    assert (own.state, own.state_by, own.bundle_version) == ("modified", "git", "abc123")


def test_provenance_round_trips_through_mlflow_tags(repo: Path) -> None:
    found = spec_provenance(repo / "pipelines" / "spec.yaml", bundle=Bundle("dags", "v1", None))
    tags = found.tags()
    assert tags[contracts.TAG_SPEC_STATE] == "clean" and tags[contracts.TAG_SPEC_TRACKED] == "true"
    assert tags[contracts.TAG_BUNDLE_VERSION] == "v1" and contracts.TAG_SPEC_NOTE not in tags
    assert all(isinstance(v, str) for v in tags.values())
    assert SpecProvenance.from_tags(tags) == found
    assert SpecProvenance.from_tags({contracts.TAG_DATASET_SHA256: "x"}) is None
    json.dumps(found.to_dict())


def _provenance(state: str, **changes: object) -> SpecProvenance:
    facts: dict[str, object] = {
        "kind": "file", "source": "/srv/project/include/pipelines/flights.yaml", "sha256": "ab" * 32,
        "state": state, "state_by": "git", "commit": "c0ffee" * 6 + "beef",
        "repo_path": "include/pipelines/flights.yaml",
    }  # fmt: skip
    facts.update(changes)
    return SpecProvenance(**facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("provenance", "review", "severity", "message"),
    [
        (_provenance("clean"), "require", "ok", "is committed at c0ffeec0ffee, unchanged"),
        (_provenance("clean"), "off", "ok", "is committed at c0ffeec0ffee, unchanged"),
        (_provenance("modified", note="differs from HEAD"), "require", "alert", "uncommitted changes"),
        (_provenance("modified"), "warn", "warn", "it differs from commit c0ffeec0ffee"),
        (_provenance("modified"), "off", "ok", "Not judged (spec_review: off): Spec include/pipelines/flights.yaml"),
        (_provenance("untracked", note="not tracked by git"), "require", "alert", "never submitted (not tracked"),
        (_provenance("unknown", state_by=None, repo_path=None, note="git is not installed"), "warn", "warn",
         "Spec /srv/project/include/pipelines/flights.yaml (sha256 abababababab): whether it was submitted is "
         "unknown: git is not installed."),
        (None, "require", "alert", "records no spec provenance"),
        (None, "warn", "warn", "records no spec provenance"),
    ],
    ids=["clean", "clean-off", "modified-require", "modified-warn", "modified-off", "untracked", "unknown", "none",
         "none-warn"],
)  # fmt: skip
def test_the_verdict_follows_the_review_setting(
    provenance: SpecProvenance | None, review: str, severity: str, message: str
) -> None:
    finding = check_spec_provenance(provenance, review)
    assert (finding.check, finding.severity) == ("spec_provenance", severity)
    assert message in finding.message
    assert finding.details["spec_review"] == review
    assert finding.details["provenance"] == (provenance.to_dict() if provenance else None)


def test_review_settings_and_missing_files_fail_clearly(tmp_path: Path) -> None:
    assert parse_review(False, "x") == "off" and parse_review(" Require ", "x") == "require"
    with pytest.raises(SpecError, match=r"The 'review' argument must be 'require', 'warn' or 'off'\. Got 'block'"):
        check_spec_provenance(None, "block")
    with pytest.raises(SpecError, match=r"must be 'require', 'warn' or 'off'\. Got True"):
        parse_review(True, "monitoring.spec_review")
    with pytest.raises(SourceNotFoundError, match=r"The spec file '.*missing.yaml' does not exist"):
        spec_provenance(str(tmp_path / "missing.yaml"))
