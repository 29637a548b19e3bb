"""The git side of the loop: snapshots of every attempt, keep commits, restoring the pipeline.

Only the pipeline, the results file and .arl/ are ever touched; the user's other work stays as it is."""

from __future__ import annotations

import re
import sys
from typing import Any

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.git.repo import rel, top
from arl.util import sh


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
    """Tracked or untracked changes under the pipeline (git status lines), comparing bytes: attributes (which a
    kept `.gitattributes` could set so that a file never looks clean, e.g. `* text` and CRLF) are not applied."""
    from arl.git.gitobjects import algo
    from arl.git.gittree import empty_tree

    cmd = _git(cfg)["status", "--porcelain", "--untracked-files=all", "--", rel(cfg, cfg.pipeline_dir)]
    _, out, _ = sh.run(cmd, env={"GIT_ATTR_SOURCE": empty_tree(algo(cfg))})  # git >= 2.40; older gits ignore it
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


def snapshot(cfg: LabConfig, exp_id: int, tree: str, message: str) -> str:
    """A commit on top of HEAD whose pipeline is exactly `tree`, under the experiment's ref. Built from objects:
    neither the index, nor HEAD, nor any folder is read or touched."""
    from arl.git.gitobjects import promote, with_path

    promote(cfg, tree)  # the import's objects leave their quarantine: this tree is recorded
    root = with_path(cfg, "HEAD", rel(cfg, cfg.pipeline_dir), tree)
    g = _git(cfg)
    _, sha, _ = sh.run(g[(*identity_args(cfg), "commit-tree", root, "-p", "HEAD", "-m", message)])
    sha = sha.strip()
    # create-only (an empty old value): an experiment's ref is never moved, whatever the worktree went through
    code, _, err = sh.run(g["update-ref", ref_name(cfg, exp_id), sha, ""], ok=None)
    if code != 0:
        raise ArlError(f"cannot create {ref_name(cfg, exp_id)} (an experiment's ref is never moved): {err.strip()}")
    return sha


def experiment_refs(cfg: LabConfig) -> dict[int, str]:
    """The lab's experiment refs: id -> commit."""
    prefix = ref_name(cfg, 0)[:-1]
    _, out, _ = sh.run(_git(cfg)["for-each-ref", "--format=%(objectname) %(refname)", prefix], quiet=True)
    found: dict[int, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition(" ")
        tail = name[len(prefix) :]
        if tail.isascii() and tail.isdigit():
            found[int(tail)] = sha
    return found


def claim_id(cfg: LabConfig, after_rows: int, tree: str) -> tuple[int, str | None]:
    """The id of the next experiment, and the commit to reuse for it if it already has one. Never an id that has a
    ref (a stash, a reset or an old checkout of results.tsv must not hand out saved ids again): past the highest
    ref. One exception: the newest ref is the next row's and holds this very tree, i.e. a run killed between the
    snapshot and the row; that snapshot is the experiment's, reused as it is (nothing moves, no id is skipped)."""
    from arl.git.gitobjects import pipeline_tree

    refs = experiment_refs(cfg)
    top_id = max(refs, default=-1)
    if top_id == after_rows and pipeline_tree(cfg, refs[top_id]) == tree:
        return top_id, refs[top_id]
    return max(after_rows, top_id + 1), None


def commit_keep(cfg: LabConfig, snapshot_sha: str, message: str) -> tuple[bool, str]:
    """`git commit` of the snapshot's pipeline plus the results file as it is now, hooks included, through a
    private index: the user's staged work elsewhere is neither committed nor lost. Returns (committed, output)."""
    from arl.git.gitobjects import shown, store, with_path
    from arl.git.gittree import FILE

    s = store(cfg)
    blob = s.put(b"blob", cfg.results_file.read_bytes())
    sh.note(f"wrote {shown(cfg, cfg.results_file)} as blob {blob} into {shown(cfg, s.dir)}")
    root = with_path(cfg, snapshot_sha, rel(cfg, cfg.results_file), blob, FILE)
    g = _git(cfg)
    index = cfg.state_dir / "keep.index"
    _, real, _ = sh.run(g["rev-parse", "--git-path", "index"], quiet=True)
    source = top(cfg) / real.strip()
    try:
        # Starting from a copy of the user's index keeps its stat data: git need not re-read unchanged files.
        index.write_bytes(source.read_bytes())
        sh.note(f"copied the index {shown(cfg, source)} to {shown(cfg, index)}")
    except OSError:
        index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index)}
    sh.run(g["read-tree", "-m", "-i", root] if index.exists() else g["read-tree", root], env=env)
    env = {**env, "ARL_KEEP_LAB": str(cfg.root), "ARL_HOOK_PYTHON": sys.executable}
    code, out, err = sh.run(g[(*identity_args(cfg), "commit", "-q", "-m", message)], ok=None, env=env)
    index.unlink(missing_ok=True)
    sh.note(f"removed {shown(cfg, index)}")
    if code != 0:
        return False, (err or out).strip()
    sync_index(cfg)
    return True, (out + err).strip()


def sync_index(cfg: LabConfig) -> None:
    """The user's index follows HEAD for the pipeline and the results file (and nothing else)."""
    sh.run(_git(cfg)[("reset", "-q", "--", rel(cfg, cfg.pipeline_dir), rel(cfg, cfg.results_file))], ok=None)


def keep_message(exp_id: int, run: int, agent: str, score: float | None, verified: float | None, notes: str) -> str:
    fmt = lambda v: "" if v is None else repr(v)  # noqa: E731
    first = f"arl: experiment {exp_id} kept (score {fmt(verified if verified is not None else score)})"
    body = quote_notes(notes)
    trailers = (
        f"Arl-Experiment: {exp_id}\nArl-Score: {fmt(score) or 'none'}\nArl-Verified-Score: {fmt(verified) or 'none'}\n"
        f"Arl-Agent: {agent}\nArl-Run: {run}\n"
    )
    return f"{first}\n\n{body}\n\n{trailers}" if body else f"{first}\n\n{trailers}"


def quote_notes(notes: str) -> str:
    """The agent's notes as a commit message body that git can never read as trailers or a patch divider:
    every line indented (a trailer line starts at column 0), control characters escaped."""
    from arl.util.text import clean

    lines = clean(notes.strip(), newlines=True).replace("\t", "    ").splitlines()
    return "\n".join(f"    {ln}" if ln.strip() else "" for ln in lines)
