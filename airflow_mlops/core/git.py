"""Asking git about a folder through its command line, each call bounded by a timeout.

The one place the package runs git: :func:`run_git` runs a command and raises :class:`GitUnanswered`
when git could not be asked at all (missing, timed out, not runnable), so that callers turn that into
an ``unknown`` answer rather than an error; :func:`head_commit` is the commit of the checkout holding a
folder. Spec provenance (:mod:`airflow_mlops.core.provenance`) and the training run's tags use it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

GIT_TIMEOUT_SECONDS = 5.0
_COMMIT = re.compile(r"[0-9a-f]{40,64}")


class GitUnanswered(Exception):
    """Git could not be asked (missing, timed out): the state is unknown."""


def run_git(folder: Path, timeout: float, *args: str) -> tuple[int, str, str]:
    """Run one git command in ``folder``: (exit code, stdout, stderr), stripped.

    :raises GitUnanswered: git is not installed, did not answer within ``timeout`` seconds, or could not be run.
    """
    # Paths are taken literally (a file named "*.yaml" is not a glob); check-ignore takes plain paths
    # and refuses that option.
    literal = [] if args[0] == "check-ignore" else ["--literal-pathspecs"]
    command = ["git", "--no-optional-locks", *literal, "-C", str(folder), *args]
    # No prompt for credentials, no lock files in someone else's repository, messages in English.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=env, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise GitUnanswered("git is not installed (no 'git' on PATH)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitUnanswered(f"'git {args[0]}' did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise GitUnanswered(f"git could not be run: {exc}") from exc
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def head_commit(folder: Path, *, timeout: float = GIT_TIMEOUT_SECONDS) -> str | None:
    """Commit of the git checkout holding ``folder``, or None when it is not one (or git cannot tell)."""
    if not folder.is_dir():
        return None
    try:
        code, sha, _ = run_git(folder, timeout, "rev-parse", "HEAD")
    except GitUnanswered:
        return None
    return sha if code == 0 and _COMMIT.fullmatch(sha) else None
