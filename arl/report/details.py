"""What the table does not hold, per experiment: the diff of its pipeline against its parent (from its ref, as
`arl show` prints it) and its transcript excerpt. Kept as JSON lines in `.arl/report/details.jsonl`, one line per
experiment, each already escaped for an HTML page, so that refreshing the page computes only the new ones (one
`git log` for all of them) and joins the rest as they are."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from arl.git import repo
from arl.report import transcript
from arl.util import sh

if TYPE_CHECKING:
    from arl.config.config import LabConfig
    from arl.history.format import Row

DIFF_LIMIT = 200_000  # characters of one experiment's diff in the page
_MARK = "\x01arl-commit "


class Detail(TypedDict):
    id: int
    commit: str
    diff: str | None  # None: the commit is not in this repository (a copied results.tsv)
    transcript: str
    container: str | None  # the agent's container when it decided: another than its slot's last is a relaunch


def script_safe(text: str) -> str:
    """JSON text that can sit inside <script type="application/json">: no `<`, `>` or `&` (so no `</script>` and
    no `<!--`), and no raw U+2028/U+2029 (line ends to some JavaScript parsers). Each stays the same JSON value."""
    for raw, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        if raw in text:
            text = text.replace(raw, esc)
    return text


def cache_path(cfg: LabConfig) -> Path:
    return cfg.state_dir / "report" / "details.jsonl"


_loaded: dict[str, tuple[int, int, dict[int, tuple[str, str]]]] = {}  # path -> (inode, bytes read, what they held)


def load(path: Path) -> dict[int, tuple[str, str]]:
    """id -> (commit, the line as written) of the cached details. The file only grows: a process that read it
    before reads only what was appended since."""
    key = str(path)
    inode, done, out = _loaded.get(key, (0, 0, {}))
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_ino != inode or f.seek(0, 2) < done:  # another file: read it whole
                inode, done, out = os.fstat(f.fileno()).st_ino, 0, {}
            f.seek(done)
            data = f.read()
    except OSError:
        return {}
    end = data.rfind(b"\n") + 1  # a line being appended right now is read next time
    for line in data[:end].decode("utf-8", "replace").splitlines():
        # the lines are ours, `{"id": N, "commit": "SHA", ...}`: the two are read without parsing the rest
        head, _, rest = line.partition(', "commit": "')
        if head.startswith('{"id": ') and head[7:].isdigit() and '"' in rest:
            out[int(head[7:])] = (rest[: rest.index('"')], line)
    _loaded[key] = (inode, done + end, out)
    return dict(out)


def diffs(cfg: LabConfig, commits: list[str]) -> dict[str, str]:
    """commit -> the diff of the pipeline against its first parent, for every commit git has (one git process)."""
    if not commits:
        return {}
    g = sh.git(repo.top(cfg))
    argv = ["log", "--no-walk=unsorted", "--stdin", "-p", "--no-color", "--no-ext-diff", f"--format={_MARK}%H", "--"]
    stdin = "\n".join(commits) + "\n"
    code, out, _ = sh.run(g[(*argv, repo.rel(cfg, cfg.pipeline_dir))], ok=None, quiet=True, stdin=stdin)
    if code != 0:  # a commit git does not have (a copied history): ask which it has, all at once, and diff those
        _, out, _ = sh.run(g["cat-file", "--batch-check"], ok=None, quiet=True, stdin=stdin)
        have = [c for c, line in zip(commits, out.splitlines()) if line.endswith(" commit") or " commit " in line]
        return diffs(cfg, have) if len(have) < len(commits) else {}
    found = {c: "" for c in commits}  # a commit that did not touch the pipeline prints nothing after its mark
    for chunk in out.split(_MARK)[1:]:
        sha, _, body = chunk.partition("\n")
        body = body.strip("\n")
        found[sha.strip()] = body if len(body) <= DIFF_LIMIT else body[:DIFF_LIMIT] + "\n[arl] diff cut short here"
    return found


def refresh(cfg: LabConfig, rows: list[Row], cached: dict[int, tuple[str, str]] | None = None) -> list[str]:
    """The detail lines of every row with a commit, computing and caching those not cached yet."""
    path = cache_path(cfg)
    cached = load(path) if cached is None else cached
    wanted = {r["id"]: r for r in rows if r["id"] is not None and r["commit"]}
    new = [r for i, r in wanted.items() if cached.get(i, ("",))[0] != r["commit"]]
    if new:
        found = diffs(cfg, [r["commit"] or "" for r in new])
        marks = transcript.marks(cfg)
        lines = []
        for r in new:
            exp_id, commit = r["id"] or 0, r["commit"] or ""
            text = transcript.excerpt(cfg, exp_id, r["agent"] or "command", marks)
            container = next((m.get("container") for m in reversed(marks) if m.get("id") == exp_id), None)
            d = Detail(id=exp_id, commit=commit, diff=found.get(commit), transcript=text, container=container)
            line = script_safe(json.dumps(d))
            cached[exp_id] = (commit, line)
            lines.append(line + "\n")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.writelines(lines)
        except OSError:
            pass  # a cache that cannot be written is no cache: the page is still whole
    return [cached[i][1] for i in wanted if i in cached]
