"""`arl plot`: a PNG of the score per experiment; several results files side by side; a clear error without
matplotlib."""

from __future__ import annotations

import struct
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from arl.history import results
from tests.conftest import arl, run
from tests.test_config import one_line_error, write_lab
from tests.test_results_cmd import HISTORY, row

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLUE = (0x1F, 0x77, 0xB4)  # tab:blue, the kept points and the running best
ORANGE = (0xFF, 0x7F, 0x0E)  # tab:orange, the holdout line


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def colour_pixels(path: Path, rgb: tuple[int, int, int], tol: int = 12) -> int:
    """How many pixels of the image have this colour (matplotlib reads PNGs into a numpy array)."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    np = pytest.importorskip("numpy")
    close = np.abs(image[..., :3] * 255 - np.array(rgb)) <= tol
    return int(close.all(axis=-1).sum())


def lab_with(tmp_path: Path, rows: list[dict[str, Any]], name: str = "lab") -> Path:
    lab = write_lab(tmp_path / name)
    for r in rows:
        results.append(lab / "results.tsv", r)
    return lab


def without_holdout(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "holdout_score": None} for r in rows]


@pytest.fixture(autouse=True)
def _needs_matplotlib() -> None:
    pytest.importorskip("matplotlib")


def test_plot_writes_a_png(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, without_holdout(HISTORY))
    proc = arl("plot", "-o", "progress.png", cwd=lab)
    out = lab / "progress.png"
    assert "wrote progress.png" in proc.stderr and proc.stdout == ""
    width, height = png_size(out)
    assert width > 300 and height > 200
    assert out.stat().st_size > 10_000
    assert colour_pixels(out, BLUE) > 100  # kept points and the best-so-far line
    assert colour_pixels(out, ORANGE) == 0  # no holdout line without holdout scores


def test_holdout_gets_its_own_line(tmp_path: Path) -> None:
    rows = without_holdout(HISTORY)
    rows[0]["holdout_score"], rows[4]["holdout_score"], rows[6]["holdout_score"] = 3.3, 2.6, 2.5
    lab = lab_with(tmp_path, rows)
    arl("plot", "-o", "out/holdout.png", cwd=lab)  # the folder is created
    assert colour_pixels(lab / "out" / "holdout.png", ORANGE) > 50


def plot_cmd(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> Any:
    return arl("plot", *args, cwd=cwd, check=check, env=env)


def svg_texts(path: Path, group: str = "") -> list[str]:
    """The text of an SVG chart (arl keeps SVG text as text), or of the groups whose id starts with `group`."""
    root = ET.parse(path).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    groups = [g for g in root.iter(f"{ns}g") if g.get("id", "").startswith(group)] if group else [root]
    return ["".join(t.itertext()).strip() for g in groups for t in g.iter(f"{ns}text")]


def other_lab(tmp_path: Path) -> Path:
    rows = [row(0, 1, "baseline", 5.0), row(1, 1, "keep", 4.0, notes="wider window"), row(2, 1, "discard", 4.5)]
    lab = lab_with(tmp_path, rows, name="other")
    (lab / "lab.toml").write_text((lab / "lab.toml").read_text().replace('name = "t"', 'name = "other-lab"'))
    return lab


def test_several_labs_on_one_chart_with_counts_in_the_legend(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, without_holdout(HISTORY))
    other = other_lab(tmp_path)
    arl("plot", "-o", "one.png", cwd=lab)
    arl("plot", "-o", "two.png", str(other / "results.tsv"), cwd=lab)
    assert png_size(lab / "one.png") == png_size(lab / "two.png")  # one chart, not a panel per lab
    green = (0x2C, 0xA0, 0x2C)  # tab:green, the second lab
    assert colour_pixels(lab / "one.png", green) == 0 and colour_pixels(lab / "two.png", green) > 30
    arl("plot", "-o", "two.svg", str(other / "results.tsv"), cwd=lab)
    texts = svg_texts(lab / "two.svg")
    # each lab's label is the name in its lab.toml
    assert "t (7 experiments, 3 kept)" in texts and "other-lab (2 experiments, 1 kept)" in texts
    # a LABEL: prefix names a lab; outside any lab, only the given files
    outside = tmp_path / "outside"
    outside.mkdir()
    arl("plot", "-o", "cmp.svg", f"mine:{lab / 'results.tsv'}", str(other / "results.tsv"), cwd=outside)
    texts = svg_texts(outside / "cmp.svg")
    assert "mine (7 experiments, 3 kept)" in texts and "other-lab (2 experiments, 1 kept)" in texts


def test_kept_points_carry_their_notes_unless_no_labels(tmp_path: Path) -> None:
    rows = without_holdout(HISTORY)
    rows[6]["notes"] = "x" * 80 + "\nsecond line"
    lab = lab_with(tmp_path, rows)
    plot_cmd("-o", "notes.svg", cwd=lab)
    texts = svg_texts(lab / "notes.svg")
    assert "note 4" in texts and "tab\\there" in texts  # first lines, control characters escaped
    assert "x" * 39 + "…" in texts and not any("second line" in t for t in texts)  # cut short
    assert "note 2" not in texts and "note 5" not in texts  # a discard, a veto
    plot_cmd("-o", "plain.svg", "--no-labels", cwd=lab)
    assert not any(t.startswith("note ") for t in svg_texts(lab / "plain.svg"))


def test_title_axes_limits_size_and_integer_ticks(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, [row(0, 1, "baseline", 3.0), row(1, 1, "keep", 2.5), row(2, 1, "discard", 2.9)])
    plot_cmd("-o", "default.svg", cwd=lab)
    texts = svg_texts(lab / "default.svg")
    assert "t" in texts and "experiment" in texts and "score (lower is better)" in texts
    ticks = svg_texts(lab / "default.svg", "xtick_")
    assert ticks and all(t.isdigit() for t in ticks), ticks  # 0, 1, 2: never 0.25
    plot_cmd("-o", "styled.svg", "--title", "My chart", "--xlabel", "attempt", "--ylabel", "MAE",
             "--ymin", "0", "--ymax", "10", cwd=lab)  # fmt: skip
    texts = svg_texts(lab / "styled.svg")
    assert {"My chart", "attempt", "MAE"} <= set(texts)
    yticks = [float(t.replace("\u2212", "-")) for t in svg_texts(lab / "styled.svg", "ytick_")]
    assert min(yticks) == 0 and max(yticks) == 10
    plot_cmd("-o", "big.png", "--figsize", "10x5", cwd=lab)
    assert png_size(lab / "big.png") == (1100, 550)
    one_line_error(plot_cmd("--figsize", "wide", cwd=lab, check=False), "WIDTHxHEIGHT", code=2)
    one_line_error(plot_cmd("--ymin", "5", "--ymax", "1", cwd=lab, check=False), "--ymin", code=2)


@pytest.mark.parametrize("display", [{"DISPLAY": "", "WAYLAND_DISPLAY": ""}, {"DISPLAY": ":99", "MPLBACKEND": "agg"}])
def test_without_a_usable_display_it_saves_the_default_file(tmp_path: Path, display: dict[str, str]) -> None:
    lab = lab_with(tmp_path, without_holdout(HISTORY))
    proc = plot_cmd(cwd=lab, env=display)
    assert "wrote progress.png" in proc.stderr
    assert png_size(lab / "progress.png")[0] > 300


def test_the_default_file_goes_to_the_lab_never_into_the_pipeline(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, without_holdout(HISTORY))
    proc = plot_cmd(cwd=lab / "pipeline", env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert png_size(lab / "progress.png")[0] > 300 and not list((lab / "pipeline").iterdir()), proc.stderr
    proc = plot_cmd("-o", "p.png", cwd=lab / "pipeline", check=False)
    one_line_error(proc, "inside the pipeline folder", "-o FILE")
    assert not list((lab / "pipeline").iterdir())


def test_an_empty_history_still_plots(example_lab: Path) -> None:
    arl("plot", "-o", "progress.png", cwd=example_lab)
    assert png_size(example_lab / "progress.png")[0] > 300
    # the lab's Makefile wraps the command
    run(["make", "-s", "plot"], cwd=example_lab)
    assert png_size(example_lab / "progress.png")[0] > 300


def test_plot_errors(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, HISTORY)
    one_line_error(arl("plot", "-o", "x.png", "a:nowhere.tsv", cwd=lab, check=False), "no results file at nowhere.tsv")
    outside = tmp_path / "outside"
    outside.mkdir()
    one_line_error(arl("plot", "-o", "x.png", cwd=outside, check=False), "no lab.toml")
    bad = tmp_path / "bad.tsv"
    bad.write_text("not\ta results file\n")
    one_line_error(arl("plot", "-o", "x.png", f"b:{bad}", cwd=outside, check=False), "header")
    assert not (outside / "x.png").exists()


BLOCK_MATPLOTLIB = """
import sys

class _NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _NoMatplotlib())
"""


def test_without_matplotlib_a_one_line_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCK_MATPLOTLIB))
    env = {"PYTHONPATH": str(site)}
    lab = lab_with(tmp_path, HISTORY)
    # the blocker really works in this interpreter...
    probe = run([sys.executable, "-c", "import matplotlib"], cwd=lab, check=False, env=env)
    assert probe.returncode != 0 and "No module named 'matplotlib'" in probe.stderr
    # ...and arl says how to get matplotlib, in one line
    proc = run([sys.executable, "-c", "import sys; from arl.cli import main; sys.exit(main())", "plot", "-o", "p.png"],
               cwd=lab, check=False, env=env)  # fmt: skip
    line = one_line_error(proc, "matplotlib is not installed")
    assert line.startswith("arl: error: matplotlib is not installed: pip install '.[plot]' in a checkout of arl")
    assert not (lab / "p.png").exists()


def test_parallel_agents_are_coloured_by_slot(tmp_path: Path) -> None:
    rows = without_holdout(HISTORY)
    lab = lab_with(tmp_path, [{**r, "slot": i % 3} for i, r in enumerate(rows)])
    arl("plot", "-o", "slots.svg", cwd=lab)
    texts = svg_texts(lab / "slots.svg")
    assert {"slot 0", "slot 1", "slot 2"} <= set(texts), texts
    one = lab_with(tmp_path, rows, name="one-slot")
    arl("plot", "-o", "one.svg", cwd=one)
    assert not [t for t in svg_texts(one / "one.svg") if t.startswith("slot ")]
    two = lab_with(tmp_path, rows, name="other")  # comparing labs: colours name the labs, not slots
    arl("plot", "-o", "cmp.svg", str(two / "results.tsv"), cwd=lab)
    assert not [t for t in svg_texts(lab / "cmp.svg") if t.startswith("slot ")]
