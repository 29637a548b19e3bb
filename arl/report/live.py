"""The live page of a lab, `.arl/report/index.html`, kept current during a run by a worker process of its own, never
by the decider: after each experiment the loop only asks (`refresh`: the request's time written to a file and a lock
tried, well under a millisecond; a worker started when none holds the lock). The worker rewrites the page, again
while requests keep coming (those that came since are answered by one more, a second or two later), and exits once
none came for a few seconds: never two at once, the decider never waiting for it. The run's end rewrites the page
(`refresh(cfg, active=False)`) after any worker, so it is complete when the run returns. Nothing here is fatal: a
page that cannot be written is a line in .arl/logs/report.log.

ARL_LIVE_REPORT=0 turns the live page off (the benchmark measures the decider without it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arl.config.config import LabConfig
    from arl.report import gather

LINGER_S = 5.0  # how long a worker waits for the next request before it exits (a fresh one costs a start-up)
# Rewrites are at least MIN_GAP_S apart (a fast loop decides several times a second: one rewrite answers them all,
# and the worker's git and CPU stay off the decider's way), more for a page that takes long (twenty times its cost),
# but never more than MAX_GAP_S: the page is at most about that late.
MIN_GAP_S = 1.0
MAX_GAP_S = 2.0


def path(cfg: LabConfig) -> Path:
    return cfg.state_dir / "report" / "index.html"


def write(cfg: LabConfig, active: bool, out: Path | None = None, more: list[gather.Lab] | None = None) -> Path:
    return _write(cfg, active, out, more)[0]


def _write(
    cfg: LabConfig, active: bool, out: Path | None = None, more: list[gather.Lab] | None = None
) -> tuple[Path, int]:
    """The page written, and how many experiments of this lab it holds."""
    from arl.history import results as res  # here, not at the top: the decider's `refresh` never needs them
    from arl.report import gather, render
    from arl.report.series import Series

    lab = gather.Lab(Series(cfg.name, cfg.results_file, cfg.maximize, res.read(cfg.results_file).rows), cfg)
    out = out or path(cfg)
    render.write(out, render.page(gather.page_json([lab, *(more or [])], active), f"arl report: {cfg.name}"))
    return out, len(lab.series.rows)


def refresh(cfg: LabConfig, active: bool = True) -> None:
    """The loop's call. During the run (`active`): ask for a rewrite and return at once. At its end: rewrite the
    page now, as the run's last (after the worker's current rewrite, if any). A failure is logged, never raised."""
    if os.environ.get("ARL_LIVE_REPORT") == "0":
        return
    try:
        wanted = _ask(cfg)
        fd = _try_lock(cfg)
        if fd is None:  # a worker holds the lock: it looks at the requests again before it lets go
            if not active:
                _wait_done(cfg, wanted)
            return
        if active:
            _start_worker(cfg, fd)
            return
        try:
            _rewrite(cfg, wanted, active=False)
        finally:
            os.close(fd)
    except Exception as e:  # noqa: BLE001 - the report is a view: nothing in it may stop the loop
        log(cfg, f"the live report was not written: {type(e).__name__}: {e}")


def log(cfg: LabConfig, message: str, echo: bool = True) -> None:
    """A line on stderr (unless the caller's stderr is this log already) and in .arl/logs/report.log."""
    if echo:
        print(f"arl: {message}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError), open(cfg.state_dir / "logs" / "report.log", "a") as f:
        f.write(f"{time.time():.3f} {message}\n")


def _file(cfg: LabConfig, name: str) -> Path:
    return cfg.state_dir / "report" / name


def _ask(cfg: LabConfig) -> int:
    """A request: its time in `wanted`, which only grows (written whole by a rename: a reader never sees half)."""
    wanted = max(time.time_ns(), _read(cfg, "wanted") + 1)
    _put(cfg, "wanted", wanted)
    return wanted


def _read(cfg: LabConfig, name: str) -> int:
    try:
        return int(_file(cfg, name).read_text() or 0)
    except (OSError, ValueError):
        return 0


def _put(cfg: LabConfig, name: str, value: int) -> None:
    p = _file(cfg, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{name}.{os.getpid()}")
    tmp.write_text(str(value))
    os.replace(tmp, p)


def _try_lock(cfg: LabConfig) -> int | None:
    """The worker's lock, taken without waiting: its descriptor, or None when another process holds it."""
    fd = os.open(_file(cfg, "worker.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _start_worker(cfg: LabConfig, fd: int) -> None:
    """A detached process that inherits the held lock (this process lets go of its copy) and no terminal or pipe of
    the run's: a caller reading the run's output is never kept waiting by it."""
    try:
        (cfg.state_dir / "logs").mkdir(mode=0o700, exist_ok=True)  # a lab's first run: no log written yet
        with open(cfg.state_dir / "logs" / "report.log", "a") as err:
            env = {**os.environ, "ARL_REPORT_LOCK_FD": str(fd)}
            argv = [sys.executable, "-m", "arl.report.worker", str(Path(cfg.path).resolve())]
            out = subprocess.DEVNULL
            subprocess.Popen(argv, stdin=out, stdout=out, stderr=err, pass_fds=(fd,), env=env, start_new_session=True)
    finally:
        os.close(fd)


def _rewrite(cfg: LabConfig, wanted: int, active: bool) -> float:
    """One rewrite answering every request up to `wanted`; the seconds it took (logged in writes.log)."""
    started = time.perf_counter()
    _, rows = _write(cfg, active)
    spent = time.perf_counter() - started
    _put(cfg, "done", wanted)
    with open(_file(cfg, "writes.log"), "a") as f:
        f.write(f"{time.time():.3f} {rows} {spent:.4f} {'live' if active else 'final'}\n")
    return spent


def _wait_done(cfg: LabConfig, wanted: int, timeout: float = 10.0) -> None:
    """The run's end while a worker rewrites: it answers this request too (it sees the run over, so the page it
    writes is the final one). Once no worker holds the lock (it ended without answering) or after `timeout`, the
    page is rewritten here: a run's end never waits on a view."""
    deadline = time.monotonic() + timeout
    while _read(cfg, "done") < wanted:
        fd = _try_lock(cfg)
        if fd is not None or time.monotonic() > deadline:
            if fd is None:
                log(cfg, f"the report's worker did not answer within {timeout:.0f} s: rewriting the page here")
            try:
                _rewrite(cfg, wanted, active=False)
            finally:
                if fd is not None:
                    os.close(fd)
            return
        time.sleep(0.05)


def run_active(cfg: LabConfig) -> bool:
    from arl.report import gather

    return gather.run_active(cfg)


def work(cfg: LabConfig, fd: int) -> None:
    """The worker: rewrite while asked, paced, then let go of the lock; a request that came just as it let go found
    the lock held, so it is answered here after all (unless another worker took the lock meanwhile)."""
    last, spent = 0.0, 0.0
    while True:
        try:
            while (wanted := _read(cfg, "wanted")) > _read(cfg, "done"):
                if run_active(cfg):  # paced: a long history's page (megabytes) takes at most a twentieth of the time
                    gap = min(max(20 * spent, MIN_GAP_S), MAX_GAP_S)
                    time.sleep(max(last + gap - time.monotonic(), 0.0))
                    wanted = _read(cfg, "wanted")  # those that came while it waited: one rewrite for them all
                # read after the requests it answers: the run's end (state saved, then its request) is seen
                active = run_active(cfg)
                last, spent = time.monotonic(), _rewrite(cfg, wanted, active)
                if not active:
                    return  # the run is over: no request will come
                idle_until = time.monotonic() + LINGER_S
                while _read(cfg, "wanted") <= wanted and time.monotonic() < idle_until:
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 - a view: its failure is a logged line
            log(cfg, f"the live report was not written: {type(e).__name__}: {e}", echo=False)
            return
        finally:
            os.close(fd)
        if _read(cfg, "wanted") <= _read(cfg, "done"):
            return
        again = _try_lock(cfg)
        if again is None:  # another worker took over
            return
        fd = again
