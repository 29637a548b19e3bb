"""`arl plot`: a PNG of the score per experiment; several results files side by side; a clear error without
matplotlib."""

from __future__ import annotations

import struct
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from arl import results
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


def test_several_results_files_side_by_side(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, without_holdout(HISTORY))
    other = lab_with(tmp_path, [row(0, 1, "baseline", 5.0), row(1, 1, "keep", 4.0), row(2, 1, "discard", 4.5)],
                     name="other")  # fmt: skip
    arl("plot", "-o", "one.png", cwd=lab)
    arl("plot", "-o", "two.png", f"other run:{other / 'results.tsv'}", cwd=lab)
    w1, h1 = png_size(lab / "one.png")
    w2, h2 = png_size(lab / "two.png")
    assert h1 == h2 and w2 > 1.6 * w1  # a second panel beside the first
    # outside any lab, only the given files; a bare PATH is labelled by its folder
    outside = tmp_path / "outside"
    outside.mkdir()
    arl("plot", "-o", "cmp.png", f"a:{lab / 'results.tsv'}", str(other / "results.tsv"), cwd=outside)
    w3, _ = png_size(outside / "cmp.png")
    assert w3 == w2


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
    assert line == "arl: error: matplotlib is not installed; pip install 'arl[plot]'"
    assert not (lab / "p.png").exists()
