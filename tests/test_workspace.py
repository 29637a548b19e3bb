"""The host's side of workspaces, without Docker: seeding from git objects, importing as data, restoring, and
writing the user's pipeline folder only from objects. Real git in temporary repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from arl.config.config import LabConfig, load
from arl.git import gitobjects, gitops
from arl.git.gittree import LINK, empty_tree, scan
from arl.sandbox.workspace import LocalWorkspace, checkout, sync_worktree

from .conftest import arl, git


def lab_cfg(example_lab: Path) -> LabConfig:
    return load(example_lab / "lab.toml")


def tree_with(cfg: LabConfig, files: dict[str, tuple[bytes, bytes]]) -> str:
    """A pipeline tree holding exactly these (mode, content) files, built with git's own plumbing."""
    g = ["git", "-C", str(cfg.root)]
    index = cfg.root / ".git" / "test.index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    import subprocess

    index.unlink(missing_ok=True)
    for path, (mode, content) in files.items():
        oid = subprocess.run([*g, "hash-object", "-w", "--stdin", "--no-filters"], input=content,
                             capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
        subprocess.run([*g, "update-index", "--add", "--cacheinfo", f"{mode.decode()},{oid},{path}"],
                       env=env, check=True)  # fmt: skip
    tree = subprocess.run([*g, "write-tree"], env=env, capture_output=True, check=True).stdout.decode().strip()
    index.unlink()
    return tree


def test_seed_then_import_gives_the_same_tree_and_a_restore_removes_everything(example_lab: Path) -> None:
    cfg = lab_cfg(example_lab)
    best = gitobjects.pipeline_tree(cfg)
    ws = LocalWorkspace(cfg, 0)
    ws.seed(best)
    assert (ws.parent.stat().st_mode & 0o777) == 0o700
    assert ws.import_tree().tree == best
    # What an agent leaves: a nested repository, a FIFO, an unreadable folder, a deep chain.
    (ws.path / "evil").mkdir()
    git(ws.path / "evil", "init", "-q")
    os.mkfifo(ws.path / "pipe")
    deep = ws.path / "deep"
    deep.mkdir()
    for _ in range(80):
        deep = deep / "d"
        deep.mkdir()
    (ws.path / "locked").mkdir()
    (ws.path / "locked" / "f").write_text("x")
    os.chmod(ws.path / "locked", 0)
    found = ws.import_tree(strict=True)
    assert not found.ok and found.tree == ""
    salvaged = ws.import_tree(strict=False)
    assert salvaged.tree and len(salvaged.problems) >= 3, salvaged.problems
    ws.seed(best)
    assert ws.import_tree().tree == best
    assert sorted(os.listdir(ws.path)) == sorted(os.listdir(example_lab / "pipeline"))
    assert not ws.restore_cut_short()


def test_a_keep_never_writes_through_a_kept_symlink(example_lab: Path, tmp_path: Path) -> None:
    cfg = lab_cfg(example_lab)
    outside = tmp_path / "outside"
    outside.mkdir()
    model = (example_lab / "pipeline" / "model.py").read_bytes()
    first = tree_with(cfg, {"model.py": (b"100644", model), "a": (LINK, str(outside).encode())})
    second = tree_with(cfg, {"model.py": (b"100644", model), "a/b": (b"100644", b"written\n")})
    head = gitobjects.pipeline_tree(cfg)
    sync_worktree(cfg, head, first)
    assert os.readlink(example_lab / "pipeline" / "a") == str(outside)
    sync_worktree(cfg, first, second)
    assert os.listdir(outside) == []
    assert (example_lab / "pipeline" / "a" / "b").read_bytes() == b"written\n"
    assert scan(example_lab / "pipeline").tree == second


def test_a_kept_gitattributes_cannot_make_the_pipeline_look_dirty_forever(example_lab: Path) -> None:
    cfg = lab_cfg(example_lab)
    model = (example_lab / "pipeline" / "model.py").read_bytes()
    tree = tree_with(
        cfg,
        {"model.py": (b"100644", model), ".gitattributes": (b"100644", b"* text\n"), "w.txt": (b"100644", b"a\r\n")},
    )
    # Commit it as a keep would (the tree, then the index follows HEAD), writing the folder from objects.
    sync_worktree(cfg, gitobjects.pipeline_tree(cfg), tree)
    sha = gitops.snapshot(cfg, 1, tree, "keep")
    git(example_lab, "update-ref", "HEAD", sha)
    gitops.sync_index(cfg)
    assert gitops.pipeline_dirty(cfg) == []
    assert gitobjects.pipeline_tree(cfg) == tree


def test_a_checkout_of_the_empty_tree_is_an_empty_folder(example_lab: Path, tmp_path: Path) -> None:
    cfg = lab_cfg(example_lab)
    dest = tmp_path / "empty"
    dest.mkdir()
    checkout(cfg, empty_tree(), dest)
    assert os.listdir(dest) == []


def test_arl_eval_outside_the_sandbox_still_works_after_the_change(example_lab: Path) -> None:
    out = arl("eval", "--json", "--data", "data", cwd=example_lab).stdout
    assert '"score"' in out


def objects_bytes(repo: Path) -> int:
    return sum(f.stat().st_size for f in (repo / ".git" / "objects").rglob("*") if f.is_file())


def test_imports_grow_the_repository_only_for_recorded_snapshots(example_lab: Path) -> None:
    """Ten imports of a 4 MB workspace that nothing records (stale or rejected keeps) leave `.git/objects` as it was;
    the one that is recorded moves exactly its objects in, and the repository stays sound (fsck --strict)."""
    cfg = lab_cfg(example_lab)
    ws = LocalWorkspace(cfg, 0)
    ws.seed(gitobjects.pipeline_tree(cfg))
    before = objects_bytes(example_lab)
    trees = []
    for i in range(10):
        (ws.path / "big.bin").write_bytes(os.urandom(4 << 20))  # incompressible: 4 MB per import if stored
        (ws.path / "sub").mkdir(exist_ok=True)
        (ws.path / "sub" / "n.txt").write_text(f"import {i}\n")
        found = ws.import_tree()
        assert found.ok, found.problems
        trees.append(found.tree)
    assert objects_bytes(example_lab) - before < 1 << 20
    missing = subprocess.run(["git", "-C", str(example_lab), "cat-file", "-e", trees[-1]], capture_output=True)
    assert missing.returncode != 0  # not in the repository until recorded
    sha = gitops.snapshot(cfg, 1, trees[-1], "arl: experiment 1 (discard)")
    grew = objects_bytes(example_lab) - before
    assert 4 << 20 <= grew < 5 << 20, grew
    assert gitobjects.pipeline_tree(cfg, sha) == trees[-1]
    fsck = subprocess.run(["git", "-C", str(example_lab), "fsck", "--strict", "--no-dangling"], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # An earlier import's objects were dropped with the next import: they are gone, not waiting somewhere.
    assert subprocess.run(["git", "-C", str(example_lab), "cat-file", "-e", trees[0]]).returncode != 0
    # A verification checkout of an unrecorded import works too (it moves the objects in first).
    ws.path.joinpath("sub", "n.txt").write_text("verified\n")
    found = ws.import_tree()
    dest = example_lab / ".arl" / "checkout-test"
    dest.mkdir()
    checkout(cfg, found.tree, dest)
    assert (dest / "sub" / "n.txt").read_text() == "verified\n"
