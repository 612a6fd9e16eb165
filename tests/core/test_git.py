"""Asking git (core.git): the checkout's commit, and git missing or silent as an answer, not an error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from airflow_mlops.core.git import GitUnanswered, head_commit, run_git


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No repository around tmp_path is found, and commits need no user configuration."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for prefix in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{prefix}_NAME", "Pipeline Owner")
        monkeypatch.setenv(f"{prefix}_EMAIL", "owner@example.com")


def test_head_commit_of_a_checkout_and_of_a_folder_outside_one(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    (repo / "dags").mkdir(parents=True)
    (repo / "dags" / "pipeline.py").write_text("# a DAG\n")
    assert head_commit(repo / "dags") is None  # not a repository yet
    subprocess.run(["git", "-C", str(repo), "init", "--quiet"], check=True)
    assert head_commit(repo / "dags") is None  # a repository without a commit
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "--quiet", "-m", "dags"], check=True)
    expected = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert head_commit(repo / "dags") == expected
    assert head_commit(repo / "missing") is None


def test_git_missing_is_unanswered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GitUnanswered, match="git is not installed"):
        run_git(tmp_path, 5.0, "rev-parse", "HEAD")
    assert head_commit(tmp_path) is None
