"""The git side of the loop: snapshots of every attempt, keep commits, restoring the pipeline.

Only the pipeline, the results file and .arl/ are ever touched; the user's other work stays as it is."""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import Any

from . import sh
from .config import LabConfig
from .errors import ArlError


def top(cfg: LabConfig) -> Path:
    return _top(cfg.root)


@functools.lru_cache(maxsize=8)
def _top(root: Path) -> Path:
    _, out, _ = sh.run(sh.git(root)["rev-parse", "--show-toplevel"], quiet=True)
    return Path(out.strip())


def rel(cfg: LabConfig, path: Path) -> str:
    return os.path.relpath(path.resolve(), top(cfg).resolve())


def ref_name(cfg: LabConfig, exp_id: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.name).strip(".-") or "lab"
    slug = re.sub(r"\.\.+", ".", slug).removesuffix(".lock")
    return f"refs/arl/{slug}/experiments/{exp_id}"


def _git(cfg: LabConfig) -> Any:
    return sh.git(top(cfg))


def identity_args(cfg: LabConfig) -> list[str]:
    """A repository without user.email still gets arl's commits, under a neutral identity."""
    code, _, _ = sh.run(sh.git(cfg.root)["config", "user.email"], ok=None, quiet=True)
    return [] if code == 0 else ["-c", "user.name=arl", "-c", "user.email=arl@localhost"]


def pipeline_dirty(cfg: LabConfig) -> list[str]:
    """Tracked or untracked changes under the pipeline (git status lines)."""
    _, out, _ = sh.run(_git(cfg)["status", "--porcelain", "--untracked-files=all", "--", rel(cfg, cfg.pipeline_dir)])
    return [ln for ln in out.splitlines() if ln.strip()]


def head(cfg: LabConfig) -> str:
    _, out, _ = sh.run(_git(cfg)["rev-parse", "HEAD"], quiet=True)
    return out.strip()


def current_branch(cfg: LabConfig) -> str | None:
    code, out, _ = sh.run(_git(cfg)["symbolic-ref", "--quiet", "--short", "HEAD"], ok=None, quiet=True)
    return out.strip() if code == 0 else None


def use_branch(cfg: LabConfig, branch: str | None) -> str:
    """The branch the run commits to: --branch (created when missing) or the current one, never a detached HEAD."""
    if branch:
        if current_branch(cfg) != branch:
            code, _, _ = sh.run(_git(cfg)["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], ok=None)
            sh.run(_git(cfg)[("checkout", "-q", *([] if code == 0 else ["-b"]), branch)])
        return branch
    name = current_branch(cfg)
    if name is None:
        raise ArlError("HEAD is detached; check out a branch or pass --branch NAME")
    return name


def worktree_tree(cfg: LabConfig, index_name: str = "snapshot.index", quiet: bool = False) -> str:
    """The tree of HEAD with the pipeline as it is on disk, through a private index (the user's stays as it is)."""
    index = cfg.state_dir / index_name
    index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index)}
    g = _git(cfg)
    sh.run(g["read-tree", "HEAD"], env=env, quiet=quiet)
    sh.run(g["add", "-A", "--", rel(cfg, cfg.pipeline_dir)], env=env, quiet=quiet)
    _, tree, _ = sh.run(g["write-tree"], env=env, quiet=quiet)
    index.unlink(missing_ok=True)
    return tree.strip()


def snapshot(cfg: LabConfig, exp_id: int, message: str) -> str:
    """Commit the pipeline's exact current tree (on top of HEAD) without touching the index or HEAD."""
    g = _git(cfg)
    tree = worktree_tree(cfg)
    _, sha, _ = sh.run(g[(*identity_args(cfg), "commit-tree", tree, "-p", "HEAD", "-m", message)])
    sha = sha.strip()
    sh.run(g["update-ref", ref_name(cfg, exp_id), sha])
    return sha


def restore_pipeline(cfg: LabConfig) -> None:
    """Back to HEAD, untracked files included (ignored ones, such as a cache, are left alone)."""
    g = _git(cfg)
    p = rel(cfg, cfg.pipeline_dir)
    code, out, _ = sh.run(g["ls-tree", "-d", "HEAD", "--", p], quiet=True)
    if out.strip():
        sh.run(g["restore", "--source=HEAD", "--staged", "--worktree", "--", p])
    sh.run(g["clean", "-fdq", "--", p])


def commit_keep(cfg: LabConfig, message: str) -> tuple[bool, str]:
    """`git commit` of the pipeline and the results file, hooks included. Returns (committed, hook output)."""
    g = _git(cfg)
    paths = [rel(cfg, cfg.pipeline_dir), rel(cfg, cfg.results_file)]
    sh.run(g[("add", "-A", "--", *paths)])
    env = {"ARL_KEEP_LAB": str(cfg.root), "ARL_HOOK_PYTHON": sys.executable}
    code, out, err = sh.run(g[(*identity_args(cfg), "commit", "-q", "-m", message, "--", *paths)], ok=None, env=env)
    if code != 0:
        sh.run(g[("reset", "-q", "--", *paths)])
        return False, (err or out).strip()
    return True, (out + err).strip()


def keep_message(exp_id: int, run: int, agent: str, score: float | None, verified: float | None, notes: str) -> str:
    fmt = lambda v: "" if v is None else repr(v)  # noqa: E731
    first = f"arl: experiment {exp_id} kept (score {fmt(verified if verified is not None else score)})"
    body = notes.strip()
    trailers = (
        f"Arl-Experiment: {exp_id}\nArl-Score: {fmt(score) or 'none'}\nArl-Verified-Score: {fmt(verified) or 'none'}\n"
        f"Arl-Agent: {agent}\nArl-Run: {run}\n"
    )
    return f"{first}\n\n{body}\n\n{trailers}" if body else f"{first}\n\n{trailers}"


def resolves(cfg: LabConfig, sha: str) -> bool:
    code, _, _ = sh.run(_git(cfg)["rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"], ok=None, quiet=True)
    return code == 0
