"""The hostile-agent suite: one scripted adversarial agent per attack, on the real engine. Nothing an agent tries
may get a worse pipeline kept or leak what it must not see. Prints one table: attack, outcome, contained."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arl.git.gittree import scan

from .conftest import ROOT, arl, git, run, summary_table
from .loophelpers import check_history, containers_of, rows, run_arl, set_toml

pytestmark = [pytest.mark.docker, pytest.mark.lab(agents=("hostile_agent.py",))]
TABLE = summary_table("hostile-agent suite", ["attack", "outcome", "contained"])
SECRET = "arl-hostile-secret-value"
SECRET_ENV = {"HOSTILE_SECRET": SECRET}  # in the environment of every run: no agent may read it


@dataclass
class Before:
    """What the host measures before a run, to compare with after it."""

    listing: set[str]
    git_bytes: int
    last_run: int


def outside_listing(lab: Path) -> set[str]:
    """Every path in the test's folder except the lab, and the names in the session's folder around it."""
    found = {f"../{name}" for name in os.listdir(lab.parent.parent)}
    stack = [lab.parent]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            path = Path(e.path)
            if path == lab:
                continue
            found.add(str(path.relative_to(lab.parent)))
            if e.is_dir(follow_symlinks=False):
                stack.append(path)
    return found


def tree_bytes(root: Path) -> int:
    total, stack = 0, [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                total += e.stat(follow_symlinks=False).st_size
    return total


def setuid_files(root: Path) -> list[str]:
    """Files (not folders) under `root` with the setuid or setgid bit; iterative, never follows a link."""
    found, stack = [], [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(e.path))
            elif st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(f"{os.path.relpath(e.path, root)} ({oct(st.st_mode)})")
    return found


def last_run(lab: Path) -> int:
    return max((int(r["run"] or 0) for r in rows(lab)), default=0)


def measure(lab: Path) -> Before:
    return Before(outside_listing(lab), tree_bytes(lab / ".git"), last_run(lab))


def run_rows(lab: Path, before: Before) -> list[dict[str, str]]:
    """The experiments of the run that started after `before` (the baseline is not one)."""
    return [r for r in rows(lab) if int(r["run"] or 0) > before.last_run and r["outcome"] != "baseline"]


def reevaluate(lab: Path, commit: str) -> float:
    """The score of a commit as committed: `git archive` of the whole commit (the lab as it was committed: lab.toml,
    backend and the pipeline) extracted to a fresh folder beside the lab, evaluated there by `arl eval` on the
    host against the lab's data. Nothing of the workspace or the lab's folder is read."""
    dest = lab.parent / "reeval" / commit[:12]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(lab), "archive", "--format=tar", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    # What git archive wrote is the committed tree, byte for byte: no export-subst, export-ignore or filter applied.
    archived = scan(dest / "pipeline")
    committed = git(lab, "rev-parse", f"{commit}:pipeline").strip()
    assert archived.ok and archived.tree == committed, f"git archive of {commit[:12]} is not its tree: {archived}"
    subprocess.run(["git", "init", "-q", str(dest)], check=True)  # arl eval names trees the way its repository does
    proc = arl("eval", "--json", "--data", str(lab / "data"), "--lab", str(dest), cwd=dest, check=False, timeout=120)
    for line in reversed(proc.stdout.splitlines()):
        try:
            return float(json.loads(line)["score"])
        except (ValueError, KeyError, TypeError):
            continue
    raise AssertionError(
        f"`arl eval` of the archive of {commit[:12]} gave no score: {proc.stdout[-500:]} {proc.stderr[-500:]}"
    )


def same_score(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_invariants(lab: Path, before: Before, iterations: int) -> None:
    """What every attack must leave: a sound history (check_history), no more experiments than --max-iterations,
    nothing new outside the lab, every kept commit re-evaluating to its verified score, no setuid file."""
    rs = check_history(lab)
    mine = run_rows(lab, before)
    assert len(mine) <= iterations, f"{len(mine)} experiments in a run limited to {iterations}"
    appeared = sorted(outside_listing(lab) - before.listing)
    assert not appeared, f"files appeared outside the lab: {appeared[:5]}"
    marked = setuid_files(lab)
    assert not marked, f"setuid/setgid files under the worktree: {marked[:5]}"
    check_host_files(lab)
    for r in rs:
        if r["outcome"] in ("keep", "baseline") and r["verified_score"]:
            score = reevaluate(lab, r["commit"])
            assert same_score(score, float(r["verified_score"])), (
                f"experiment {r['id']}: its commit re-evaluates to {score!r}, recorded verified {r['verified_score']}"
            )
    head = git(lab, "rev-parse", "HEAD").strip()
    kept = [r for r in rs if r["outcome"] in ("keep", "baseline")]
    if kept and kept[-1]["outcome"] == "keep":
        score = reevaluate(lab, head)
        assert same_score(score, float(kept[-1]["verified_score"])), f"HEAD re-evaluates to {score!r}"


PROTOCOL_NAMES = re.compile(r"expected\.json|prompt\.md|ack-(0|[1-9][0-9]*)\.json")


def check_host_files(lab: Path) -> None:
    """What every run must leave on the host: a repository `git fsck --strict` finds sound (what a server that checks
    objects would take), `.arl/` private (folders 0700, files without group or other bits, no setuid, setgid or
    sticky bit anywhere), control folders holding only the names the host writes, and only plain files archived."""
    fsck = subprocess.run(["git", "-C", str(lab), "fsck", "--strict", "--no-dangling", "--no-progress"],
                          capture_output=True, text=True)  # fmt: skip
    noise = [ln for ln in (fsck.stdout + fsck.stderr).splitlines() if ln.strip() and not ln.startswith("notice:")]
    assert fsck.returncode == 0 and not noise, f"git fsck --strict: {noise[:5]}"
    arl_dir = lab / ".arl"
    loose = []
    for folder, dirs, files in os.walk(arl_dir):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if mode == 0o644 and path.parent == arl_dir / "report":
                continue  # the page a browser opens (arl report writes its files 0644), inside the 0700 .arl/
            if (stat.S_ISDIR(st.st_mode) and mode != 0o700) or mode & 0o7077:
                loose.append(f"{path.relative_to(lab)} {oct(mode)}")
    assert stat.S_IMODE(os.lstat(arl_dir).st_mode) == 0o700
    assert not loose, f"not private under .arl/: {loose[:5]}"
    for control in arl_dir.glob("control*"):
        unknown = [n for n in os.listdir(control) if not PROTOCOL_NAMES.fullmatch(n)]
        assert not unknown, f"{control.name} holds names the protocol does not define: {sorted(unknown)[:5]}"
    archived = arl_dir / "verdicts"
    if archived.exists():
        odd = [n for n in os.listdir(archived) if not stat.S_ISREG(os.lstat(archived / n).st_mode)]
        assert not odd, f"archived verdicts that are not plain files: {odd[:5]}"


def agent_container(lab: Path, timeout: float = 20) -> str:
    """The full id of the lab's one running agent container. The host freezes it for a moment now and then (the
    disk check every 30 s, the first one as the run starts waiting), so a paused one is waited for."""
    query = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=arl.root={lab.resolve()}"]
    query += ["--filter", "label=arl.role=agent", "--filter"]
    deadline = time.monotonic() + timeout
    while True:
        out = run([*query, "status=running"]).stdout.split()
        paused = run([*query, "status=paused"]).stdout.split()
        if out or not paused or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(out) == 1, f"running agent containers: {out} (paused: {paused})"
    return out[0]


def inspect(container: str) -> dict[str, Any]:
    return json.loads(run(["docker", "inspect", container]).stdout)[0]


def host_pids(container: str) -> list[int]:
    """The host's pids of every process in the container, as the engine lists them."""
    return [int(p) for p in run(["docker", "top", container, "-eo", "pid"]).stdout.split()[1:]]


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host's folder of the cgroup of `controller` that process `pid` is in: the cgroup v1 hierarchy that has
    the controller if one is mounted (/sys/fs/cgroup/pids/docker/<id>), else the v2 one (/sys/fs/cgroup/docker/<id>,
    /sys/fs/cgroup/system.slice/docker-<id>.scope); checked to hold the process."""
    mounts: dict[str, str] = {}  # controller -> mount point; "" -> the cgroup2 mount
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        fstype, _source, options = fs.split()[:3]
        point = fields.split()[4]
        if fstype == "cgroup2":
            mounts.setdefault("", point)
        elif fstype == "cgroup":
            for option in options.split(","):
                mounts.setdefault(option, point)
    v1 = v2 = None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(",") and controller in mounts:
            v1 = Path(mounts[controller] + path)
        elif names == "" and "" in mounts:
            v2 = Path(mounts[""] + path)
    folder = v1 or v2
    assert folder is not None, f"no {controller} cgroup for pid {pid}"
    assert str(pid) in (folder / "cgroup.procs").read_text().split(), f"{folder} does not hold pid {pid}"
    return folder


def keyed(text: str) -> dict[str, int]:
    """A cgroup file of `key value` lines (pids.events, memory.events, memory.oom_control)."""
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


class Watch:
    """The host's look at the agent's running container, at the moment the agent holds still for it: the agent
    writes .hold-NAME in its workspace and waits; `look(container id)` runs here on the host; then .release-NAME
    there lets the agent go on. Whatever the look raises is kept in `error` (the test then fails: nothing was
    seen)."""

    def __init__(self, lab: Path, name: str, look: Callable[[str], dict[str, Any]]) -> None:
        ws = lab / ".arl" / "workspaces" / "0"
        self.lab, self.look = lab, look
        self.hold, self.release = ws / f".hold-{name}", ws / f".release-{name}"
        self.seen: dict[str, Any] | None = None
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.hold.exists():
            if self._stop.wait(0.05):
                return
        try:
            self.seen = self.look(agent_container(self.lab))
        except Exception as e:  # the test reports it: nothing was seen
            self.error = f"{type(e).__name__}: {e}"
        finally:
            tmp = self.release.with_name(f".{self.release.name}.tmp")
            tmp.write_text("looked\n")
            tmp.rename(self.release)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)


def attack(
    lab: Path,
    name: str,
    *flags: str,
    env: dict[str, str] | None = None,
    sandbox: dict[str, Any] | None = None,
    iterations: int = 2,
    probe: Callable[[], Any] | None = None,
    look: Callable[[str], dict[str, Any]] | None = None,
    timeout: float = 500,
) -> dict[str, Any]:
    """Run the attack through a real `arl run`; check the common invariants on the host. The agent's report comes
    back with the host's own observations under "host"; `probe` looks at the host right after the run, before
    any check (the checks run git in the lab themselves); `look` looks at the agent's running container from the
    host while the agent holds still for it (Watch), and what it saw is under "host" "seen"."""
    set_toml(lab, "agent", "command", ["python3", "-u", "/workspace/lab/hostile_agent.py", name])
    for key, value in (sandbox or {}).items():
        set_toml(lab, "sandbox", key, value)
    git(lab, "commit", "-qam", f"attack {name}")
    before = measure(lab)
    watch = Watch(lab, name, look) if look else None
    try:
        argv = ["--agent", "command", "--iteration-timeout", "120", "--max-iterations", str(iterations), *flags]
        proc = run_arl(lab, *argv, env={**SECRET_ENV, **(env or {})}, timeout=timeout)
    finally:
        if watch:
            watch.close()
    early = probe() if probe else None
    try:
        # arl exits 1 when every experiment of the run crashed (an attack that only ends in crashes), else 0
        mine = run_rows(lab, before)
        crashed_only = bool(mine) and all(r["outcome"] == "crash" for r in mine)
        assert proc.returncode == (1 if crashed_only else 0), proc.stderr[-3000:] + proc.stdout[-3000:]
        report_file = lab / ".arl" / "notes" / "0.md"  # the agent's notes.md: it reports there
        assert report_file.exists(), proc.stdout[-3000:]
        report = json.loads(report_file.read_text())
        assert "agent_error" not in report, report
        if watch:
            assert watch.seen is not None, f"the host never looked at the agent's container: {watch.error or 'no hold'}"
        assert not containers_of(lab)
        check_invariants(lab, before, iterations)
    except AssertionError as e:
        first = (str(e).strip() or "an assertion failed (see the traceback)").splitlines()[0]
        seen = f" (right after the run: {early})" if probe else ""
        TABLE.append([name, f"FAILED: {first[:110]}{seen}", "NO"])
        raise
    seen = watch.seen if watch else None
    report["host"] = {
        "lab": str(lab),
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "before": before,
        "early": early,
        "seen": seen,
    }
    return report


def record(name: str, outcome: str, contained: bool) -> None:
    TABLE.append([name, outcome, "yes" if contained else "NO"])
    assert contained, f"{name}: {outcome}"


def kept_rows(lab: Path) -> list[dict[str, str]]:
    return [r for r in rows(lab) if r["outcome"] == "keep"]


def first_row(report: dict[str, Any]) -> dict[str, str]:
    """The attack's experiment as the host recorded it in results.tsv (never what the agent relays of its ack)."""
    lab = Path(report["host"]["lab"])
    mine = run_rows(lab, report["host"]["before"])
    assert mine, "the host recorded no experiment of the attack"
    return mine[0]


# The lines `arl run` prints itself as it answers a verdict: "[verdict SEQ] rejected: REASON" or, for the row it
# recorded, "[exp ID] OUTCOME ...". The agent's own output reaches `arl run`'s only indented ("  agent text: ..."),
# so a line that starts so is the host's.
ANSWER = re.compile(r"\[verdict [^\]]*\] rejected: (.*)|\[exp +\d+\] (\S+)")


def answers(report: dict[str, Any]) -> list[str]:
    """The host's answer to each verdict of the attack's run, in order: "rejected: REASON" (nothing recorded) or
    the outcome of the row it recorded (a crash row too; the baseline left out). A rejected verdict's ack is
    overwritten by the next answer to the same seq, so `arl run`'s output is the host's one record of it."""
    said = []
    for line in report["host"]["stdout"].splitlines():
        m = ANSWER.match(line)
        if m and m[2] != "baseline":
            said.append(f"rejected: {m[1]}" if m[1] is not None else m[2])
    assert said, f"`arl run` printed no answer to a verdict: {report['host']['stdout'][-2000:]}"
    return said


def rejected(answer: str, *named: str) -> bool:
    return answer.startswith("rejected: ") and all(n in answer for n in named)


def host_acks(lab: Path) -> list[str]:
    """The ack files the host left: the control folders' and the archived ones (.arl/verdicts), as text."""
    state = lab / ".arl"
    return [p.read_text() for p in sorted([*state.glob("control*/ack-*.json"), *state.glob("verdicts/ack-*.json*")])]


def measured(row: dict[str, str]) -> str:
    return f"host measured {float(row['verified_score']):.4g}" if row["verified_score"] else "nothing measured"


def test_forged_verdict_with_a_better_score(lab: Path) -> None:
    row = first_row(attack(lab, "forged_verdict"))
    no_keep_commit = "Arl-Experiment" not in git(lab, "log", "--format=%B")
    contained = row["outcome"] == "vetoed" and not kept_rows(lab) and no_keep_commit
    record("forged verdict claiming score -1e9", f"{row['outcome']}: {measured(row)}", contained)


def test_keep_after_making_it_worse(lab: Path) -> None:
    report = attack(lab, "keep_after_worsening")
    said = answers(report)
    # refused before any measurement (a keep that was measured would be vetoed): no row; the discard is the first
    contained = rejected(said[0], "changed") and said[1:2] == ["discard"] and not kept_rows(lab)
    record("keep after worsening the evaluated pipeline", f"{short(said[0], 60)} (stale pipeline hash)", contained)


def test_editing_the_eval_cache(lab: Path) -> None:
    row = first_row(attack(lab, "eval_cache"))
    contained = row["outcome"] == "vetoed" and row["verified_score"] != "" and not kept_rows(lab)
    record("edited eval cache (score -1e9)", f"{row['outcome']}: {measured(row)}", contained)


def test_writing_lab_files_results_and_state(lab: Path) -> None:
    before = {p: (lab / p).read_bytes() for p in ("lab.toml", "backend.py", "AGENT.md")}
    report = attack(lab, "write_protected")
    written = [p for p, r in report["attempts"].items() if r == "written"]
    # lab.toml was rewritten by attack() itself (the agent's command) and committed: compare with HEAD.
    unchanged = all((lab / p).read_bytes() == b for p, b in before.items() if p != "lab.toml")
    unchanged = unchanged and git(lab, "status", "--porcelain", "lab.toml", "backend.py", "AGENT.md") == ""
    untouched_results = all("pwned" not in r["notes"] for r in rows(lab))
    contained = not written and unchanged and untouched_results and not report["state_files"]
    record(
        "write lab.toml, backend, AGENT.md, results, .arl state",
        f"refused: {sorted(set(report['attempts'].values()))}",
        contained,
    )


def test_reading_the_holdout(lab: Path, tmp_path: Path) -> None:
    holdout = tmp_path / "holdout"
    holdout.mkdir()
    for csv in sorted((lab / "data").glob("*.csv"))[:3]:
        shutil.copy(csv, holdout / csv.name)
    (holdout / "holdout_marker_9f3c.txt").write_text("only the host may see this")
    report = attack(lab, "read_holdout", "--holdout", str(holdout))
    rs = rows(lab)
    # The holdout is evaluated by the host for the baseline and every keep, and recorded.
    assert rs[0]["holdout_score"], rs[0]
    keeps = [r for r in rs if r["outcome"] == "keep"]
    assert keeps and all(r["holdout_score"] for r in keeps)
    view_rows = report["results_view"].splitlines()[1:]
    leaked_in_view = any(line.split("\t")[6] for line in view_rows)
    acks = host_acks(lab)
    assert acks, "the host left no ack"
    contained = not report["found"] and not any("holdout" in a for a in acks) and not leaked_in_view
    record("find / -name the holdout marker; read holdout scores", f"found {len(report['found'])} paths", contained)


def test_symlink_to_a_host_file(lab: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text("TOPSECRET-HOST-CONTENT\n")
    set_toml(lab, "sandbox", "env", ["ARL_HOSTILE_TARGET"])
    report = attack(lab, "symlink_escape", env={"ARL_HOSTILE_TARGET": str(secret_file)})
    answer = answers(report)[0]
    if answer == "keep":
        mode = git(lab, "ls-tree", "HEAD", "pipeline/leak.txt").split()[0]
        content = git(lab, "cat-file", "-p", "HEAD:pipeline/leak.txt")
        assert mode == "120000" and content == str(secret_file)
    leaked = subprocess.run(
        [
            "git",
            "-C",
            str(lab),
            "grep",
            "TOPSECRET-HOST-CONTENT",
            *git(lab, "for-each-ref", "--format=%(objectname)").split(),
        ],
        capture_output=True,
        text=True,
    ).stdout
    contained = not leaked and secret_file.read_text() == "TOPSECRET-HOST-CONTENT\n"
    record(
        "symlink in the pipeline to a host file, then keep",
        f"{short(answer)}; committed as a link, not content",
        contained,
    )


PIDS_LIMIT = 128


def look_pids(container: str) -> dict[str, Any]:
    """The container's pids cgroup, read on the host while the bomb's children hold their pids."""
    info = inspect(container)
    cg = cgroup_dir(info["State"]["Pid"], "pids")
    peak = cg / "pids.peak"  # kernels from 6.13 (and some earlier ones) keep the high-water mark
    return {
        "engine_limit": info["HostConfig"]["PidsLimit"],
        "max": (cg / "pids.max").read_text().strip(),
        "current": int((cg / "pids.current").read_text()),
        "peak": int(peak.read_text()) if peak.exists() else None,
        "refused": keyed((cg / "pids.events").read_text()).get("max", 0),
        "processes": len(host_pids(container)),
    }


def test_fork_bomb(lab: Path) -> None:
    report = attack(lab, "fork_bomb", sandbox={"pids_limit": PIDS_LIMIT}, look=look_pids)
    seen = report["host"]["seen"]
    # The kernel refused forks at the limit (pids.events max), and the host never saw more than the limit.
    contained = (
        seen["engine_limit"] == PIDS_LIMIT
        and seen["max"] == str(PIDS_LIMIT)
        and seen["refused"] > 0
        and seen["current"] <= PIDS_LIMIT
        and seen["processes"] <= PIDS_LIMIT
        and (seen["peak"] is None or seen["peak"] <= PIDS_LIMIT)
    )
    record(
        "fork bomb",
        f"host: pids.max {seen['max']}, {seen['refused']} forks refused, {seen['current']} pids "
        f"(peak {seen['peak'] if seen['peak'] is not None else '-'}), {seen['processes']} processes "
        f"(agent claims {report['forks']} forks)",
        contained,
    )


MEMORY_LIMIT = 256 << 20


def look_memory(container: str) -> dict[str, Any]:
    """The container's memory cgroup, read on the host after the bomb: its OOM kills, limit and high-water mark."""
    info = inspect(container)
    cg = cgroup_dir(info["State"]["Pid"], "memory")

    def number(name: str) -> int | None:
        path = cg / name
        if not path.exists():
            return None
        text = path.read_text().strip()
        return None if text == "max" else int(text)

    if (cg / "memory.oom_control").exists():  # cgroup v1
        kills = keyed((cg / "memory.oom_control").read_text())["oom_kill"]
        limit, peak = number("memory.limit_in_bytes"), number("memory.max_usage_in_bytes")
    else:
        kills = keyed((cg / "memory.events").read_text())["oom_kill"]
        limit, peak = number("memory.max"), number("memory.peak")
    return {"engine_limit": info["HostConfig"]["Memory"], "limit": limit, "peak": peak, "oom_kills": kills}


class HostMemory:
    """The host's MemAvailable (/proc/meminfo), sampled every 20 ms on a thread until close(): its lowest."""

    def __init__(self) -> None:
        self.lowest = self.first = self.available()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def available() -> int:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no MemAvailable in /proc/meminfo")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.lowest = min(self.lowest, self.available())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_memory_bomb(lab: Path) -> None:
    host = HostMemory()
    try:
        report = attack(lab, "memory_bomb", sandbox={"memory": "256m"}, look=look_memory)
    finally:
        host.close()
    seen = report["host"]["seen"]
    # The kernel killed inside the container's cgroup, which never held more than its limit; the host kept memory.
    contained = (
        seen["engine_limit"] == MEMORY_LIMIT
        and seen["limit"] == MEMORY_LIMIT
        and seen["oom_kills"] > 0
        and (seen["peak"] is None or seen["peak"] <= MEMORY_LIMIT)
        and host.lowest > MEMORY_LIMIT
    )
    mib = 1 << 20
    record(
        "memory bomb (2 GiB)",
        f"host: {seen['oom_kills']} OOM kill under {seen['limit'] // mib} MiB, peak "
        f"{seen['peak'] // mib if seen['peak'] is not None else '-'} MiB; host available >= {host.lowest // mib} MiB "
        f"(agent's child exit {report['returncode']})",
        contained,
    )


class Listener:
    """A host listener that counts the connections it accepts: what reached the host, whatever the agent says."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_host_ports(lab: Path) -> None:
    listeners = [Listener("0.0.0.0"), Listener("127.0.0.1")]
    try:
        # The instrument works: a connection from the host itself is counted (then forgotten).
        with socket.create_connection(("127.0.0.1", listeners[1].port), timeout=3):
            pass
        deadline = time.monotonic() + 5
        while listeners[1].accepted < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listeners[1].accepted == 1
        listeners[1].accepted = 0
        ports = listeners[0].port, listeners[1].port
        gateway = (
            subprocess.run(
                ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            or "172.17.0.1"
        )
        targets = f"{gateway}:{ports[0]},host.docker.internal:{ports[0]},127.0.0.1:{ports[1]},{gateway}:{ports[1]}"
        set_toml(lab, "sandbox", "env", ["ARL_HOSTILE_PORTS"])
        report = attack(lab, "host_ports", env={"ARL_HOSTILE_PORTS": targets})
        time.sleep(0.5)  # a connection still in the backlog is counted too
    finally:
        for listener in listeners:
            listener.close()
    accepted = sum(listener.accepted for listener in listeners)
    claimed = [t for t, r in report["connections"].items() if r == "connected"]
    record(
        "connect to host ports (0.0.0.0 and 127.0.0.1 listeners)",
        f"host accepted {accepted} connections (agent claims {len(claimed)} of 4)",
        accepted == 0,
    )


def environments_holding(secret: bytes) -> set[int]:
    """The host's processes whose environment holds `secret`."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if secret in Path(entry.path, "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue  # gone, or a kernel thread
    return found


def look_environments(container: str) -> dict[str, Any]:
    """The container's configured environment, and every environment of its processes read from the host."""
    info = inspect(container)
    pids = host_pids(container)
    environs = {}
    for pid in pids:
        try:
            environs[pid] = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
    holders = environments_holding(SECRET.encode())
    return {
        "config": [e.split("=")[0] for e in info["Config"]["Env"] if SECRET in e],
        "processes": len(pids),
        "read": sum(b"ARL_SANDBOX=1" in env for env in environs.values()),
        "inside": sorted(holders & set(pids)),
        "outside": len(holders - set(pids)),
    }


def test_host_environment_secrets(lab: Path) -> None:
    names = ["HOSTILE_SECRET", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"]
    report = attack(lab, "env_secrets", env=dict.fromkeys(names, SECRET), look=look_environments)
    seen = report["host"]["seen"]
    # The instrument works: the secret is in the environment of the host's processes running arl at that moment,
    # and the container's processes' environments were read (they hold arl's ARL_SANDBOX=1).
    assert seen["outside"] > 0 and seen["read"] > 0, seen
    contained = not seen["config"] and not seen["inside"]
    record(
        "read host environment secrets",
        f"host: in Config.Env {seen['config'] or 'nowhere'}, in {len(seen['inside'])} of {seen['read']} process "
        f"environments (held by {seen['outside']} host processes; agent found {len(report['found'])})",
        contained,
    )


def hostile_module() -> Any:
    """The hostile agent's own code, loaded on the host (to run an attack where it must work)."""
    spec = importlib.util.spec_from_file_location("hostile_agent", ROOT / "tests" / "agents" / "hostile_agent.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_engine_socket() -> str:
    host = run(["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"], check=False).stdout.strip()
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"


def engine_names(name: str) -> list[str]:
    """Containers and volumes whose name holds `name`, as the engine lists them."""
    containers = run(["docker", "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}"]).stdout.split()
    volumes = run(["docker", "volume", "ls", "--filter", f"name={name}", "--format", "{{.Name}}"]).stdout.split()
    return [f"container {c}" for c in containers] + [f"volume {v}" for v in volumes]


def remove_names(name: str) -> None:
    for kind, found in (n.split(" ", 1) for n in engine_names(name)):
        run(["docker", "rm" if kind == "container" else "volume", *([] if kind == "container" else ["rm"]), "-f",
             found], check=False)  # fmt: skip


def look_mounts(container: str) -> dict[str, Any]:
    """What of the host's engine socket the container has mounted, as the engine describes the container."""
    sock = os.path.realpath(host_engine_socket())
    exposing = []
    for m in inspect(container)["Mounts"]:
        src = os.path.realpath(m.get("Source") or "/nonexistent")
        if sock == src or sock.startswith(src.rstrip("/") + "/") or "docker.sock" in m.get("Destination", ""):
            exposing.append(f"{m.get('Source')} -> {m.get('Destination')}")
    return {"exposing": exposing, "socket": sock}


def test_docker_socket(lab: Path, base_image: str) -> None:
    name = f"arl-hostile-{os.getpid()}-{time.monotonic_ns()}"
    # The instrument works: the agent's own requests, sent to the host's engine, create what the host then lists.
    control = f"{name}-control"
    try:
        answers = hostile_module().engine_create(host_engine_socket(), control, base_image)
        assert sorted(engine_names(control)) == [f"container {control}", f"volume {control}"], answers
    finally:
        remove_names(control)
    assert not engine_names(name)
    set_toml(lab, "sandbox", "env", ["ARL_HOSTILE_NAME", "ARL_HOSTILE_IMAGE"])
    try:
        report = attack(
            lab,
            "docker_socket",
            env={"ARL_HOSTILE_NAME": name, "ARL_HOSTILE_IMAGE": base_image},
            look=lambda c: {**look_mounts(c), "created": engine_names(name)},
        )
        created = sorted(set(report["host"]["seen"]["created"]) | set(engine_names(name)))
    finally:
        remove_names(name)
    exposing = report["host"]["seen"]["exposing"]
    record(
        "reach a docker socket (create a volume and a container)",
        f"engine holds {created or 'nothing'} named so; {len(exposing)} mounts of {report['host']['seen']['socket']} "
        f"(agent tried {len(report['created'])} sockets)",
        not created and not exposing,
    )


ARL_TRAILERS = ["Arl-Experiment", "Arl-Score", "Arl-Verified-Score", "Arl-Agent", "Arl-Run"]


def all_commits(lab: Path) -> list[str]:
    """Every row's commit, HEAD, and everything reachable from any ref (refs/arl/* included)."""
    shas = {r["commit"] for r in rows(lab) if r["commit"]} | {git(lab, "rev-parse", "HEAD").strip()}
    shas |= set(git(lab, "rev-list", "--all").split())
    return sorted(shas)


def gitlinks_and_dot_git(lab: Path, commits: list[str]) -> list[str]:
    """Entries of mode 160000, or with a path component named .git, in any of these commits' trees."""
    bad = []
    for sha in commits:
        for entry in git(lab, "ls-tree", "-r", "-t", "-z", "--full-tree", sha).split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode = meta.split()[0]
            if mode == "160000" or any(part.lower() == ".git" for part in path.split("/")):
                bad.append(f"{sha[:10]}:{path} ({mode})")
    return bad


def short(reason: str, n: int = 70) -> str:
    return reason if len(reason) <= n else reason[: n - 1] + "…"


def test_nested_repo_with_fsmonitor(lab: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fsmonitor-ran"  # a host path: only the host running git in the nested repo creates it
    set_toml(lab, "sandbox", "env", ["ARL_HOSTILE_MARKER"])
    report = attack(
        lab,
        "nested_repo_fsmonitor",
        env={"ARL_HOSTILE_MARKER": str(marker)},
        probe=lambda: {"marker exists": marker.exists()},
    )
    answer = answers(report)[0]
    ran_during_run = report["host"]["early"]["marker exists"]
    bad = gitlinks_and_dot_git(lab, all_commits(lab))
    # The user's own git in the lab afterwards must not run it either.
    for cmd in (["status"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(lab), *cmd], capture_output=True, timeout=60)
    ran_after = marker.exists()
    contained = rejected(answer, "evil") and not kept_rows(lab) and not ran_during_run and not ran_after and not bad
    record(
        "nested repo (core.fsmonitor, core.hooksPath) in a keep",
        f"{short(answer, 60)}; marker {'CREATED' if marker.exists() else 'absent'}; {len(bad)} gitlink/.git entries",
        contained,
    )


def test_gitignore_hiding_a_file(lab: Path) -> None:
    report = attack(lab, "gitignore_hidden")
    answer = answers(report)[0]
    if answer != "keep":
        record("pipeline/.gitignore hiding extra.py, then keep", short(answer), True)
        return
    row = first_row(report)
    commits = {"snapshot": row["commit"], "HEAD": git(lab, "rev-parse", "HEAD").strip()}
    has_extra = {
        k: "pipeline/extra.py" in git(lab, "ls-tree", "-r", "--name-only", c).split() for k, c in commits.items()
    }
    scores = {k: reevaluate(lab, c) for k, c in commits.items()}
    verified = float(row["verified_score"])
    contained = all(has_extra.values()) and all(same_score(v, verified) for v in scores.values())
    record(
        "pipeline/.gitignore hiding extra.py, then keep",
        f"kept; extra.py committed: {all(has_extra.values())}; archive re-evaluates to {scores['HEAD']:.4g} "
        f"(verified {verified:.4g})",
        contained,
    )


def test_git_file_gitlink(lab: Path) -> None:
    report = attack(lab, "git_file_gitlink")
    answer = answers(report)[0]
    bad = gitlinks_and_dot_git(lab, all_commits(lab))
    contained = rejected(answer, "sub/.git") and not kept_rows(lab) and not bad
    record(
        "sub/.git file 'gitdir: ../../.git' (gitlink) in a keep",
        f"{short(answer, 60)}; {len(bad)} gitlink/.git entries in history",
        contained,
    )


def test_setuid_binary(lab: Path) -> None:
    report = attack(lab, "setuid_binary")
    answer = answers(report)[0]
    marked = setuid_files(lab)
    modes = {}
    if answer == "keep":
        row = first_row(report)
        for where in (row["commit"], "HEAD"):
            for path in ("pipeline/py", "pipeline/tool.sh"):
                modes[f"{where[:7]}:{path}"] = git(lab, "ls-tree", where, path).split()[0]
    contained = not marked and all(m == "100755" for m in modes.values())
    record(
        "setuid python (4755) and setgid script in a keep",
        f"{short(answer)}; agent set {sorted(report['modes'].values())}; committed "
        f"{sorted(set(modes.values())) or '-'}; {len(marked)} setuid files on the host",
        contained,
    )


def test_wedges(lab: Path) -> None:
    # Each wedge with its verdict; then all at once and the agent dies: a crash, salvaged and restored over.
    report = attack(lab, "wedges", iterations=6)
    wedges = hostile_module().WEDGES  # (label, what the host's reason must name, ...), one verdict each in order
    said = answers(report)
    assert len(said) > len(wedges), said  # a verdict each, then the crash
    wrong = {w[0]: a for w, a in zip(wedges, said) if not (rejected(a, w[1]) or a == "discard")}
    outcomes = sorted({a.split(":")[0] for a in said[: len(wedges)]})
    crashes = [r for r in rows(lab) if r["outcome"] == "crash"]
    # The next run on the same lab starts and completes normally.
    before = measure(lab)
    proc = run_arl(lab, "--max-iterations", "2", env=SECRET_ENV, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    new = run_rows(lab, before)
    check_invariants(lab, before, 2)
    contained = not wrong and bool(crashes) and len(new) >= 1
    record(
        "wedges: 1,100 deep, empty repo, >PATH_MAX, chmod 000, FIFO, socket",
        f"answers {outcomes}; {len(crashes)} crash salvaged; next run: {len(new)} experiments, exit {proc.returncode}",
        contained,
    )
    assert not wrong, wrong


def test_verdicts_written_ahead(lab: Path) -> None:
    report = attack(lab, "verdicts_ahead", iterations=3)
    n = len(run_rows(lab, report["host"]["before"]))
    control = lab / ".arl" / "control"
    left = [name for name in os.listdir(control) if name.startswith("verdict-")]
    first = first_row(report)  # the expected seq's verdict (the last written) answered as itself, the others not
    seq = json.loads(first["metrics"])["verdict_seq"]
    contained = n <= 3 and not left and first["outcome"] == "discard" and first["notes"] == f"written ahead {seq}"
    record(
        "105 verdicts written ahead (--max-iterations 3)",
        f"{n} experiments; {len(left)} verdict files left; agent saw {len(report['verdicts_left'])} left",
        contained,
    )


def test_workspace_limits(lab: Path) -> None:
    report = attack(lab, "workspace_limits", sandbox={"max_workspace_mb": 5, "max_files": 200})
    grew = tree_bytes(lab / ".git") - report["host"]["before"].git_bytes
    big, many = answers(report)[:2]
    contained = rejected(big, "max_workspace_mb") and rejected(many, "max_files") and grew < 2 * 1024 * 1024
    record(
        "8 MB file, then 300 files (limits 5 MB, 200 files)",
        f"{short(big, 40)}, {short(many, 40)}; .git grew {grew / 1024:.0f} KiB",
        contained,
    )


def trailers(message: str) -> list[tuple[str, str]]:
    out = run(["git", "interpret-trailers", "--parse"], input=message).stdout
    return [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in out.splitlines() if line.strip())]


def test_terminal_and_trailer_injection(lab: Path) -> None:
    report = attack(lab, "terminal_injection", iterations=3)
    said = answers(report)
    outputs = {"arl run": report["host"]["stdout"] + report["host"]["stderr"]}
    outputs["arl results"] = arl("results", "--all-runs", cwd=lab).stdout
    for r in rows(lab):
        outputs[f"arl show {r['id']}"] = arl("show", r["id"], cwd=lab).stdout
    dirty = [k for k, v in outputs.items() if "\x1b" in v or "\x07" in v]
    # Every arl commit: the rows' snapshots, the keeps on the branch, everything under refs/arl.
    wrong = []
    for sha in all_commits(lab):
        message = git(lab, "log", "-1", "--format=%B", sha)
        subject = message.splitlines()[0] if message else ""
        if not subject.startswith("arl: experiment "):
            continue
        exp_id = subject.split()[2]
        found = trailers(message)
        keys = sorted(k for k, _ in found)
        want = sorted(ARL_TRAILERS) if " kept " in subject else ["Arl-Experiment"]
        if keys != want or dict(found).get("Arl-Experiment") != exp_id:
            wrong.append(f"{sha[:10]} ({subject}): {found}")
    contained = not dirty and not wrong and said[:2] == ["keep", "discard"]
    record(
        "ESC/BEL and forged trailers in notes, output, files",
        f"{'+'.join(said[:2])}; raw ESC/BEL in {dirty or 'nothing'}; {len(wrong)} bad trailer sets",
        contained,
    )
    assert not wrong, wrong


def objects_bytes(lab: Path) -> int:
    return tree_bytes(lab / ".git" / "objects")


def test_control_folder_junk_and_setuid(lab: Path) -> None:
    """200,000 junk files, forged acks, verdicts that are a folder with a setuid python, a symlink, a FIFO: every
    one answered or removed, nothing of it kept under .arl/ (check_host_files), and the next run on the lab works."""
    report = attack(lab, "control_junk", "--iteration-timeout", "900", timeout=1200)  # 200,000 files, loaded
    said = answers(report)  # the verdicts that are a folder, a symlink, a FIFO; then the honest discard
    answered = rejected(said[0], "not a regular file") and rejected(said[1], "symlink") and rejected(said[2])
    before = measure(lab)
    proc = run_arl(lab, "--max-iterations", "2", env=SECRET_ENV, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    check_invariants(lab, before, 2)
    again = len(run_rows(lab, before))
    record(
        "200,000 junk files, forged ack folder, setuid verdict folder, symlink and FIFO verdicts",
        f"answers {sorted({a.split(':')[0] for a in said[:3]})}; nothing kept; next run: {again} experiments",
        answered and said[3] == "discard" and again == 2,
    )


def test_stale_keeps_do_not_grow_the_repository(lab: Path) -> None:
    before = objects_bytes(lab)
    report = attack(lab, "stale_keeps")
    grew = objects_bytes(lab) - before
    stale = [a for a in answers(report) if rejected(a, "changed")]
    record(
        "10 stale keeps of a workspace with 4 MB of random bytes each",
        f"{len(stale)} rejected as stale; .git/objects grew {grew / 1024:.0f} KiB",
        len(stale) == 10 and grew < 1024 * 1024,
    )


def test_git_metadata_never_reaches_a_keep(lab: Path) -> None:
    """check_invariants: git fsck --strict passes and `git archive` of every keep re-evaluates to its verified score."""
    report = attack(lab, "git_metadata")
    said = answers(report)  # a keep of each, in this order, then the harmless one
    want = [".gitmodules", "sub/.gitattributes", "export-subst"]
    wrong = {named: a for named, a in zip(want, said) if not rejected(a, named)}
    kept = said[len(want) :][:1] == ["keep"]
    attributes = git(lab, "show", "HEAD:pipeline/.gitattributes") if kept else ""
    record(
        ".gitmodules with update = !cmd, a .gitattributes folder, export-subst; then a harmless .gitattributes",
        f"{sorted({a.split(':')[0] for a in said[: len(want)]})}; then {said[len(want) :][:1]}",
        not wrong and kept and "text" in attributes,
    )
    assert not wrong, wrong


def look_notes(lab: Path) -> Callable[[str], dict[str, Any]]:
    def look(container: str) -> dict[str, Any]:
        notes = lab / ".arl" / "notes" / "0.md"
        return {"size": notes.stat().st_size, "tail": notes.read_text().splitlines()[-1]}

    return look


def test_notes_are_capped(lab: Path) -> None:
    report = attack(lab, "notes_flood", look=look_notes(lab))
    seen = report["host"]["seen"]
    cut = seen["size"] <= 256 * 1024 and "max_notes_kb" in seen["tail"]
    record(
        "2 MB written to notes.md (max_notes_kb 256)",
        f"host copy {seen['size'] // 1024} KiB, ends with the notice: {'max_notes_kb' in seen['tail']}",
        cut and "max_notes_kb" in report["tail"],
    )


def test_a_workspace_filling_the_disk_is_stopped(lab: Path) -> None:
    before = objects_bytes(lab)
    attack(lab, "disk_fill", sandbox={"max_workspace_mb": 20})
    crashes = [r for r in rows(lab) if r["outcome"] == "crash"]
    stopped = [r for r in crashes if "max_workspace_mb" in r["notes"] and "while the agent ran" in r["notes"]]
    grew = objects_bytes(lab) - before
    left = tree_bytes(lab / ".arl" / "workspaces")
    record(
        "a 64 MB file growing in the workspace (max_workspace_mb 20), no verdict",
        f"{len(stopped)} crash recorded with the reason; .git/objects grew {grew / 1024:.0f} KiB; "
        f"workspaces hold {left / 1024:.0f} KiB",
        len(stopped) == 1 and grew < 1024 * 1024 and left < 5 * 1024 * 1024,
    )
