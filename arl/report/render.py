"""The page: a fixed skeleton, the CSS and JavaScript of this package inline, the data as JSON in a
<script type="application/json"> element, and a Content-Security-Policy that lets the page reach nothing: no
request to any address, no script but the one whose hash it names (an agent's text that escaped its JSON string
still could not run)."""

from __future__ import annotations

import binascii
import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

from arl.errors import ArlError

_BODY = """<header><h1 id="title">arl report</h1><span class="live" id="live" hidden>live: a run is active, this page
reloads itself</span><select id="labpick" hidden aria-label="lab"></select><span class="meta" id="meta"></span>
</header><main>
<section><div class="cards" id="cards"></div></section>
<section id="compare" hidden><h2>The labs compared</h2><div class="chartbox" id="compare-chart"></div></section>
<section><h2>Progress</h2><div class="toolbar"><button id="zoom-reset" type="button">reset zoom</button>
<span class="muted">drag across the chart or turn the wheel to zoom; click a point for its experiment</span></div>
<div class="chartbox" id="chart"></div></section>
<section class="grid2"><div><h2>History</h2><div class="toolbar">
<label>outcome <select id="f-outcome"></select></label><label>slot <select id="f-slot"></select></label>
<label>run <select id="f-run"></select></label><label>notes <input id="f-q" type="search" placeholder="text in notes">
</label><span id="count" class="muted"></span></div>
<div class="tablewrap" id="tablewrap"><table id="history"><colgroup><col style="width:52px">
<col style="width:40px"><col style="width:40px"><col style="width:112px"><col style="width:88px">
<col style="width:88px"><col style="width:88px"><col style="width:88px"><col style="width:88px">
<col style="width:70px"><col>
</colgroup><thead id="thead"></thead><tbody id="tbody"></tbody></table></div></div>
<div><h2>Experiment</h2><div class="detail" id="detail"></div></div></section>
<section><h2>Runs</h2><div class="tablewrap"><table id="runs"><thead><tr><th>run</th><th>started (UTC)</th>
<th>duration</th><th>experiments</th><th>kept</th><th>per hour</th><th>cost</th><th>agent</th><th>stop reason</th>
</tr></thead><tbody id="runs-body"></tbody></table></div><div class="chartbox" id="timeline"></div></section>
</main>"""


@cache
def _assets() -> tuple[str, str, str]:
    """(css, js, the js's CSP hash)."""
    here = Path(__file__).parent  # package data beside this module, in a wheel and an editable install alike
    css = (here / "report.css").read_text(encoding="utf-8")
    js = "\n".join((here / n).read_text(encoding="utf-8") for n in ("chart.js", "timeline.js", "view.js"))
    digest = binascii.b2a_base64(hashlib.sha256(js.encode("utf-8")).digest(), newline=False).decode()
    return css, js, digest


def csp() -> str:
    _, _, digest = _assets()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )


def page(data_json: str, title: str) -> str:
    """The whole page; `data_json` must already be safe inside a script element (details.script_safe)."""
    css, js, _ = _assets()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_escape(title)}</title>\n<style>{css}</style></head>\n<body>\n{_BODY}\n"
        f'<script type="application/json" id="arl-data">{data_json}</script>\n<script>{js}</script>\n</body></html>\n'
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write(path: Path, text: str) -> None:
    """Written whole (a temporary file renamed): a browser reloading the live page never reads half of it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise ArlError(f"cannot write {path}: {e.strerror or e}")
