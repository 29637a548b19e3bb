"""`arl report` in a real browser (Debian's headless Chromium, driven over the DevTools protocol): the report of a
real 3-slot run with the offline agent, then a run of a hostile command agent in the same lab; every experiment in
the table and the chart, sorting and filtering, diffs equal to `git diff` of the refs, agent text that runs nothing
and sends nothing, a 10,000-experiment history, a chart that is not blank, the live page that reloads itself."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.history import results

from .browser import Browser, chromium_path
from .conftest import LabMaker, arl, git, new_lab, run, skip_unless_required
from .loophelpers import cleanup_containers, run_arl, set_toml, start, wait_for

pytestmark = pytest.mark.docker
HOSTILE_NOTE = (
    '<img src=x onerror="window.__pwned_note=1"> </script><script>window.__pwned_script=1</script> '
    "<img src=http://127.0.0.1:{port}/leak-note> \u2028 & <!-- done"
)
HOSTILE_FILE = '</script><script>window.__pwned_diff=1</script><img src=x onerror="window.__pwned_img=1">'


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed as debootstrap is (apt-get, as root) when missing."""
    if chromium_path() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        cmd = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(cmd, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=900)
            subprocess.run(cmd, capture_output=True, timeout=900)
    path = chromium_path()
    if path is None:
        skip_unless_required("no chromium here (make chromium, or: sudo apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    b = Browser(chromium)
    yield b
    b.close()


class Hits(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        Hits.seen.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A loopback HTTP server that records every request: the page must never reach it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def ran_lab(tmp_path_factory: pytest.TempPathFactory, base_image: str, listener: int) -> Iterator[Path]:
    """The curve-fit example: run 1 with three offline agents (its live page watched while it runs), run 2 with
    a command agent whose notes, pipeline files and output are hostile. Made once for the module's tests (by
    new_lab itself: make_lab's labs live for one test)."""
    ran_lab = new_lab(tmp_path_factory.mktemp("report") / "repo", settings={"run": {"agents": 3}})
    argv = [str(Path(run(["which", "arl"]).stdout.strip())), "run", "--data", "data", "--agent", "offline"]
    flags = ["--seed", "3", "--plateau-threshold", "0", "--max-iterations", "12", "--holdout", "data"]
    proc = start([*argv, *flags], ran_lab, ran_lab / "run1.log")
    page = ran_lab / ".arl" / "report" / "index.html"

    def live_or_over() -> str | None:
        if page.exists() and '"active": true' in page.read_text() and len(ids_in(page)) >= 4:
            return "live"
        return "over" if proc.poll() is not None else None

    try:  # the loop rewrites the page after each experiment, marked active while the run goes on
        seen = wait_for(live_or_over, 400, "the live page with the baseline and three experiments, or the run's end")
        code = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0 and seen == "live", (seen, (ran_lab / "run1.log").read_text()[-3000:])
    agent = (
        f"while :; do printf '%s\\n' '{HOSTILE_FILE}' > evil.html; echo '<script>window.__pwned_log=1</script>'; "
        f"arl eval >/dev/null; arl verdict discard --notes '{HOSTILE_NOTE.format(port=listener)}'; done"
    )
    set_toml(ran_lab, "agent", "command", ["sh", "-c", agent])
    set_toml(ran_lab, "run", "agents", 1)
    git(ran_lab, "commit", "-qam", "a hostile agent")
    out = run_arl(ran_lab, "--max-iterations", "2", "--plateau-threshold", "0", agent="command", check=True)
    assert "max_iterations" in out.stdout, out.stdout[-2000:]
    yield ran_lab
    cleanup_containers(ran_lab)


def ids_in(page: Path) -> list[int]:
    data = json.loads(re.search(r'id="arl-data">(.*?)</script>', page.read_text(), re.S).group(1))  # type: ignore[union-attr]
    return [r["id"] for r in data["labs"][0]["rows"]]


def report(ran_lab: Path, *args: str) -> Path:
    out = arl("report", *args, cwd=ran_lab)
    return Path(out.stdout.strip().removeprefix("file://"))


def history(ran_lab: Path) -> list[dict]:
    return [dict(r) for r in results.read(ran_lab / "results.tsv").rows]


def dom_ids(b: Browser, selector: str) -> list[int]:
    return b.js(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => +e.getAttribute('data-id'))")


def test_the_live_page_and_every_experiment(ran_lab: Path, browser: Browser) -> None:
    live = ran_lab / ".arl" / "report" / "index.html"
    rows = history(ran_lab)
    assert ids_in(live) == [r["id"] for r in rows] and '"active": false' in live.read_text()  # teardown's rewrite
    assert (
        "report: " in arl("status", cwd=ran_lab).stdout
        and ".arl/report/index.html" in arl("status", cwd=ran_lab).stdout
    )
    page = report(ran_lab)
    assert page.resolve() == live.resolve()
    browser.load(page.as_uri())
    ids = [r["id"] for r in rows]
    assert {r["slot"] for r in rows if r["run"] == 1 and r["outcome"] != "baseline"} == {0, 1, 2}
    assert dom_ids(browser, "#tbody tr[data-id]") == ids
    assert sorted(dom_ids(browser, "#chart-svg .pt[data-id]")) == ids  # one point per experiment, crashes included
    kept = [r for r in rows if r["outcome"] == "keep"]
    assert browser.js("document.querySelectorAll('#chart-svg .klabel').length") == len(kept)
    assert browser.js("document.querySelectorAll('#chart-svg .runline').length") == 1  # runs 1 | 2
    held = [r for r in rows if r["holdout_score"] is not None]
    assert held and browser.js("document.querySelectorAll('#chart-svg .holdout').length") == len(held)
    assert browser.js("document.getElementById('count').textContent") == f"{len(rows)} of {len(rows)} experiments"
    runs = browser.js("[...document.querySelectorAll('#runs-body tr')].map(tr => tr.cells[8].textContent)")
    assert runs == ["max_iterations: 12 experiments in this run", "max_iterations: 2 experiments in this run"]
    # the page reloads itself only while a run is active
    assert browser.js("document.getElementById('live').hidden") is True
    assert browser.exceptions() == []
    # the loop's time rewriting the page, per decision (after the ack: outside verdict -> ack); printed, not asserted
    events = [json.loads(x) for x in (ran_lab / ".arl" / "runs.jsonl").read_text().splitlines() if '"timing"' in x]
    spent = sorted(e.get("report", 0.0) * 1000 for e in events)
    median, most = spent[len(spent) // 2], spent[-1]
    print(f"\nlive page rewrites: median {median:.1f} ms, max {most:.1f} ms over {len(spent)} decisions")


def choose(b: Browser, select: str, value: str) -> None:
    """Pick an option of a <select> as a user does (the change event included)."""
    b.js(f"(() => {{ const s = document.getElementById({json.dumps(select)}); s.value = {json.dumps(value)};"
         "s.dispatchEvent(new Event('change')); })()")  # fmt: skip


def order(b: Browser) -> list[int]:
    return dom_ids(b, "#tbody tr[data-id]")


INSIDE = (
    "[...document.querySelectorAll('#chart-svg .pt')].filter(e => { const b = e.getBBox(), x = b.x + b.width / 2;"
    " return x >= 64 && x <= 982; }).map(e => +e.dataset.id).sort((a, b) => a - b)"
)


def test_the_chart_zooms(ran_lab: Path, browser: Browser) -> None:
    page = report(ran_lab)
    browser.load(page.as_uri() + "#x0=3&x1=8")
    assert browser.js(INSIDE) == [3, 4, 5, 6, 7, 8]
    # a drag across the chart, as a mouse does it: from experiment 5 to experiment 7
    drag = """(() => { const svg = document.getElementById('chart-svg'), b = svg.getBoundingClientRect();
      const at = (id) => b.left + (64 + (id - 2.5) / 6 * 918) / 1000 * b.width, y = b.top + b.height / 2;
      svg.dispatchEvent(new MouseEvent('mousedown', {clientX: at(4.6), clientY: y, bubbles: true}));
      svg.dispatchEvent(new MouseEvent('mousemove', {clientX: at(7.4), clientY: y, bubbles: true}));
      window.dispatchEvent(new MouseEvent('mouseup', {clientX: at(7.4), clientY: y, bubbles: true}));
      return location.hash; })()"""
    assert browser.js(drag) == "#x0=5&x1=7"
    assert browser.js(INSIDE) == [5, 6, 7]
    browser.js("document.getElementById('chart-svg').dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))")
    assert browser.js(INSIDE) == list(range(len(history(ran_lab))))


def test_sorting_and_filtering(ran_lab: Path, browser: Browser) -> None:
    rows = history(ran_lab)
    page = report(ran_lab)
    browser.load(page.as_uri() + "#sort=verified_score&dir=desc")
    scored = sorted((r for r in rows if r["verified_score"] is not None), key=lambda r: -r["verified_score"])
    unscored = [r["id"] for r in rows if r["verified_score"] is None]
    assert order(browser) == [r["id"] for r in scored] + unscored  # empty cells last
    browser.js("document.querySelector('th[data-key=outcome]').click()")  # the header, as a user clicks it
    assert order(browser) == [r["id"] for r in sorted(rows, key=lambda r: r["outcome"])]
    assert "sort=outcome" in browser.js("location.hash")
    browser.js("document.querySelector('th[data-key=outcome]').click()")
    assert order(browser) == [r["id"] for r in sorted(rows, key=lambda r: r["outcome"], reverse=True)]
    for key, value, keep in [
        ("outcome", "keep", lambda r: r["outcome"] == "keep"),
        ("slot", "2", lambda r: r["slot"] == 2),
        ("run", "2", lambda r: r["run"] == 2),
    ]:
        choose(browser, f"f-{key}", value)
        assert order(browser) == [r["id"] for r in sorted(rows, key=lambda r: r["outcome"], reverse=True) if keep(r)]
        assert f"{key}={value}" in browser.js("location.hash")
        choose(browser, f"f-{key}", "")
    word = next(r["notes"].split(":")[0] for r in rows if r["outcome"] == "keep")  # e.g. SLOPE
    browser.load(page.as_uri() + "#q=" + word.lower())
    assert order(browser) == [r["id"] for r in rows if word.lower() in r["notes"].lower()]
    assert len(order(browser)) < len(rows)


SHOWN = "document.getElementById('detail-title')?.textContent"


def test_each_diff_is_git_diff_of_its_refs(ran_lab: Path, browser: Browser) -> None:
    rows = history(ran_lab)
    browser.load(report(ran_lab).as_uri())
    pipeline = "pipeline"
    for r in rows[1:]:
        ref = f"refs/arl/curve-fit/experiments/{r['id']}"
        assert git(ran_lab, "rev-parse", ref).strip() == r["commit"]
        want = git(ran_lab, "diff", f"{ref}^", ref, "--", pipeline).strip("\n")
        browser.js(f"location.hash = 'exp={r['id']}'")
        title = f"Experiment {r['id']}: {r['outcome']}"
        wait_for(lambda t=title: browser.js(SHOWN) == t, 10, "the experiment's detail")
        got = browser.js("document.getElementById('detail-diff')?.textContent ?? ''")
        assert got.strip("\n") == want, r["id"]
        assert browser.js("document.getElementById('detail-notes').textContent") == r["notes"]
        # lineage: the best it was judged against, and that one's, back to the baseline
        lineage = browser.js("[...document.querySelectorAll('#detail-lineage a')].map(a => +a.dataset.id)")
        keeps = [q["id"] for q in rows if q["outcome"] in ("baseline", "keep") and q["id"] < r["id"]]
        assert lineage == keeps
    assert any(r["outcome"] == "keep" for r in rows) and browser.js("document.querySelectorAll('pre .add').length")


def test_hostile_text_runs_nothing_and_sends_nothing(ran_lab: Path, browser: Browser, listener: int) -> None:
    rows = history(ran_lab)
    evil = [r for r in rows if r["run"] == 2 and "__pwned_note" in r["notes"]]
    assert evil, [r["notes"] for r in rows]
    Hits.seen.clear()
    browser.events.clear()
    page = report(ran_lab)
    browser.load(f"{page.as_uri()}#exp={evil[0]['id']}")
    markers = (
        "['__pwned_note', '__pwned_script', '__pwned_diff', '__pwned_img', '__pwned_log'].filter(k => k in window)"
    )
    assert browser.js(markers) == []
    # shown as text: the notes, the diff (the agent's file) and the transcript (its output)
    assert browser.js("document.getElementById('detail-notes').textContent") == evil[0]["notes"]
    assert HOSTILE_FILE in browser.js("document.getElementById('detail-diff').textContent")
    assert "window.__pwned_log" in browser.js("document.getElementById('detail-transcript').textContent")
    assert browser.js("document.querySelectorAll('img').length + document.scripts.length") == 2  # no img, our 2 scripts
    # the page's policy forbids any request: not even the page's own code could send one
    assert "default-src 'none'" in page.read_text()
    sent = browser.js(f"fetch('http://127.0.0.1:{listener}/fetch').then(() => 'sent', () => 'blocked')")
    assert sent == "blocked"
    browser.js(
        f"(() => {{ const i = new Image(); i.src = 'http://127.0.0.1:{listener}/img'; document.body.append(i); }})()"
    )
    wait_for(lambda: any("Content Security Policy" in m for m in browser.messages()), 10, "the CSP's refusal")
    assert browser.requests() == [page.as_uri()]
    assert Hits.seen == []


def synthetic(path: Path, n: int) -> None:
    """A results.tsv of n experiments in three slots over four runs (no refs: a copied history)."""
    best, lines = 10.0, [results.header_line()]
    for i in range(n):
        s = best * (0.99 if i % 7 == 3 else 1.0 + (i % 13) / 50)
        outcome = "baseline" if i == 0 else "keep" if s < best else ("crash" if i % 29 == 0 else "discard")
        best = s if outcome in ("keep", "baseline") else best
        lines.append(results.format_row({
            "id": i, "run": 1 + i * 4 // n, "time": f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "outcome": outcome, "score": None if outcome == "crash" else s * 1.001, "holdout_score": None,
            "verified_score": s if outcome in ("keep", "baseline") else None, "best": best, "cost_usd": 0.002,
            "commit": "", "agent": "offline", "notes": f"try {i}: <b>bold</b>", "metrics": {}, "slot": i % 3,
        }))  # fmt: skip
    path.write_text("".join(lines))


def test_ten_thousand_experiments(tmp_path: Path, ran_lab: Path, browser: Browser) -> None:
    tsv = tmp_path / "big" / "results.tsv"
    tsv.parent.mkdir()
    synthetic(tsv, 10_000)
    started = time.monotonic()
    out = tmp_path / "big.html"
    arl("report", "-o", str(out), f"big:{tsv}", cwd=tmp_path)
    written = time.monotonic() - started
    started = time.monotonic()
    browser.load(out.as_uri())
    loaded = time.monotonic() - started
    script = browser.js("+document.body.dataset.renderMs")
    print(
        f"\n10,000 experiments: arl report {written:.2f} s; page loaded in {loaded:.2f} s ({script} ms in its script)"
    )
    assert browser.js("document.getElementById('count').textContent") == "10000 of 10000 experiments"
    shown = order(browser)
    assert shown[:5] == [0, 1, 2, 3, 4] and 0 < len(shown) < 10_000  # drawn a window at a time
    browser.js("(() => { const w = document.getElementById('tablewrap'); w.scrollTop = w.scrollHeight; "
               "w.dispatchEvent(new Event('scroll')); })()")  # fmt: skip
    wait_for(lambda: 9999 in order(browser), 10, "the last rows drawn after scrolling to the end")
    browser.js("location.hash = 'sort=id&dir=desc'")
    wait_for(lambda: order(browser)[:3] == [9999, 9998, 9997], 10, "the table sorted by id, descending")
    assert browser.exceptions() == []
    kept = browser.js("document.querySelectorAll('#chart-svg circle.pt').length")
    assert kept == sum(1 for line in tsv.read_text().splitlines() if "\tkeep\t" in line or "\tbaseline\t" in line)
    # and with the lab of the real run: the two compared on one chart
    both = tmp_path / "both.html"
    arl("report", "-o", str(both), f"big:{tsv}", cwd=ran_lab)
    browser.load(both.as_uri())
    legend = browser.js("document.querySelector('#compare .legend').textContent")
    assert "curve-fit (" in legend and "big (9999 experiments" in legend
    choose(browser, "labpick", "1")
    assert browser.js("document.getElementById('count').textContent") == "10000 of 10000 experiments"
    assert browser.js("document.getElementById('title').textContent") == "arl report: curve-fit, big"
    assert browser.js("document.querySelectorAll('#compare-svg path[stroke-width=\"1.8\"]').length") == 2


def test_the_chart_is_not_blank(ran_lab: Path, browser: Browser, tmp_path: Path) -> None:
    import matplotlib.image

    browser.load(report(ran_lab).as_uri())
    png = tmp_path / "chart.png"
    browser.screenshot(png, "#chart")
    pixels = matplotlib.image.imread(str(png))[:, :, :3].reshape(-1, 3)
    colours = {tuple(round(float(c) * 255) for c in p) for p in pixels[:: max(len(pixels) // 20000, 1)]}
    ink = float((pixels.sum(axis=1) < 2.7).mean())  # not white
    print(f"\nchart screenshot: {len(colours)} colours, {ink:.1%} ink")
    assert len(colours) > 20 and ink > 0.01


def test_the_live_page_reloads_only_while_active(ran_lab: Path, browser: Browser, tmp_path: Path) -> None:
    from arl.config import config
    from arl.report import live

    cfg = config.load(ran_lab / "lab.toml")
    page = live.write(cfg, True, tmp_path / "active.html")
    browser.load(page.as_uri() + "#exp=3")
    assert browser.js("document.getElementById('live').hidden") is False
    browser.js("window.__before_reload = 1")
    browser.wait_event("Page.loadEventFired", timeout=20)  # it reloaded itself, the view kept in the fragment
    assert browser.js("'__before_reload' in window") is False
    assert browser.js("location.hash") == "#exp=3" and "Experiment 3" in browser.js(
        "document.getElementById('detail').textContent"
    )
    browser.load(live.write(cfg, False, tmp_path / "over.html").as_uri())
    with pytest.raises(TimeoutError):
        browser.wait_event("Page.loadEventFired", timeout=8)


def test_a_new_lab_with_an_odd_name(make_lab: LabMaker, browser: Browser) -> None:
    lab = make_lab(image=None, example=None, init=("--name", 'we<i>rd "lab" & </title>'), commit=False)
    browser.events.clear()
    browser.load(report(lab).as_uri())
    assert browser.js("document.title") == 'arl report: we<i>rd "lab" & </title>'
    assert browser.js("document.getElementById('count').textContent") == "0 of 0 experiments"
    assert browser.js("document.body.dataset.ready") == "1" and browser.exceptions() == []


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    out = arl("report", str(tmp_path / "nothing.tsv"), cwd=tmp_path, check=False)
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and "no results file" in out.stderr
    out = arl("report", cwd=tmp_path, check=False)
    assert out.returncode in (1, 2) and out.stderr.startswith("arl: error:")
