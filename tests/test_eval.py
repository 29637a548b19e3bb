"""`arl eval` and `arl diagnose`: the example, the JSON formats, and every way a backend can fail."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import arl, new_lab
from tests.test_config import one_line_error, process_gone, wait_until, write_lab

TOML = '[lab]\nname = "t"\n\n[backend]\nclass = "B"\neval_timeout = {timeout}\n'


def backend_lab(tmp_path: Path, body: str, timeout: float = 30, extra: dict[str, str] | None = None) -> Path:
    """A lab whose backend class B is `body` (the class's methods, at class indentation)."""
    src = (
        "import json, math, os, signal, subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from arl import EvalBackend, EvalResult, SampleResult\n"
        "HERE = Path(__file__).resolve().parent\n"
        "def mark(text):\n"
        "    with open(HERE / 'marks.log', 'a') as f:\n"
        "        f.write(text + '\\n')\n"
        "class B(EvalBackend):\n" + body
    )
    return write_lab(tmp_path / "lab", backend=src, toml=TOML.format(timeout=timeout), extra=extra)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The curve-fit example, shared by the tests that only read it (scaffolding it costs a second)."""
    return new_lab(tmp_path_factory.mktemp("example") / "repo", commit=False)


def marks(lab: Path) -> list[str]:
    path = lab / "marks.log"
    return path.read_text().split() if path.exists() else []


# ---- the example -----------------------------------------------------------------------------------------------


def test_eval_json_on_the_example(example: Path) -> None:
    proc = arl("eval", "--data", "data", "--json", cwd=example)
    out = json.loads(proc.stdout)
    assert set(out) == {"score", "metrics", "samples", "seconds"}
    assert isinstance(out["score"], float) and math.isfinite(out["score"]) and out["score"] > 0
    assert out["samples"] == 8 and out["seconds"] >= 0
    assert out["metrics"]["failed"] == 0
    # stdout not a terminal: JSON even without --json
    assert json.loads(arl("eval", "--data", "data", cwd=example).stdout)["score"] == out["score"]
    # the evaluation is deterministic, and did not leave bytecode in the pipeline
    assert not list((example / "pipeline").rglob("*.pyc"))


def test_eval_only_some_samples(example: Path) -> None:
    out = json.loads(arl("eval", "--data", "data", "--sample", "sample_01", "--sample", "sample_02",
                         cwd=example).stdout)  # fmt: skip
    assert out["samples"] == 2


def _table_rows(text: str) -> list[tuple[str, float]]:
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(sample_\d+)\s+([-+0-9.eE]+)\s", line + " ")
        if m:
            rows.append((m.group(1), float(m.group(2))))
    return rows


def test_diagnose_table_is_worst_first(example: Path) -> None:
    proc = arl("diagnose", "--data", "data", cwd=example)
    rows = _table_rows(proc.stdout)
    assert len(rows) == 8
    scores = [s for _, s in rows]
    assert scores == sorted(scores, reverse=True)  # lower is better: the worst is the highest
    assert len(set(scores)) > 1  # per-sample results mean something
    assert "sample" in proc.stdout.splitlines()[1] and "error" in proc.stdout
    top = _table_rows(arl("diagnose", "--data", "data", "--top", "3", cwd=example).stdout)
    assert top == rows[:3]
    one = _table_rows(arl("diagnose", "--data", "data", "--sample", "sample_04", cwd=example).stdout)
    assert [r[0] for r in one] == ["sample_04"]


def test_diagnose_json(example: Path) -> None:
    out = json.loads(arl("diagnose", "--data", "data", "--json", cwd=example).stdout)
    assert set(out) == {"score", "samples"}
    assert len(out["samples"]) == 8
    for s in out["samples"]:
        assert set(s) == {"sample_id", "score", "error", "extra"}
        assert s["error"] is None and s["extra"] == {"points": 60}
    scores = [s["score"] for s in out["samples"]]
    assert scores == sorted(scores, reverse=True)
    mean = json.loads(arl("eval", "--data", "data", cwd=example).stdout)["score"]
    assert out["score"] == pytest.approx(mean)
    top = json.loads(arl("diagnose", "--data", "data", "--json", "--top", "2", cwd=example).stdout)
    assert top["samples"] == out["samples"][:2]


def test_diagnose_failed_samples_first_and_maximize(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        return EvalResult(score=0.5, sample_results=[
            SampleResult("good", 0.9), SampleResult("broken", float("nan"), error="boom\\ttab"),
            SampleResult("bad", 0.1, extra={"why": "x"}), SampleResult("mid", 0.5),
        ])
""",
    )
    (lab / "lab.toml").write_text(
        (lab / "lab.toml").read_text().replace('name = "t"', 'name = "t"\ndirection = "maximize"')
    )
    out = json.loads(arl("diagnose", "--data", "data", "--json", cwd=lab).stdout)
    assert [s["sample_id"] for s in out["samples"]] == ["broken", "bad", "mid", "good"]
    assert out["samples"][0]["score"] is None and out["samples"][0]["error"] == "boom\ttab"
    table = arl("diagnose", "--data", "data", cwd=lab).stdout
    assert table.index("broken") < table.index("bad") < table.index("mid") < table.index("good")
    assert "boom" in table


# ---- the backend API -------------------------------------------------------------------------------------------


def test_backend_imports_a_sibling_module_and_pipeline_cannot_shadow_stdlib(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        import csv  # the standard library's, not the pipeline's csv.py
        from helper import VALUE
        return EvalResult(score=VALUE, metrics={"csv": csv.__name__, "cwd": os.getcwd()})
""",
        extra={"helper.py": "VALUE = 0.125\n", "pipeline/csv.py": "raise RuntimeError('pipeline csv.py shadowed')\n"},
    )
    out = json.loads(arl("eval", "--data", "data", cwd=lab).stdout)
    assert out["score"] == 0.125 and out["metrics"]["csv"] == "csv"
    assert out["metrics"]["cwd"] == str((lab / "pipeline").resolve())


def test_a_single_phase_backend_is_made_in_the_pipeline_folder(tmp_path: Path) -> None:
    """`arl eval` learns the backend's kind and evaluates in one process: the backend is still made (its __init__
    runs) in the pipeline folder, as in a process of its own, not in the host's scratch folder."""
    lab = backend_lab(
        tmp_path,
        """
    def __init__(self):
        self.made_in = os.getcwd()
        self.params = open("params.txt").read().strip()  # the pipeline's, relative to it
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        return EvalResult(score=float(self.params), metrics={"made_in": self.made_in, "cwd": os.getcwd()})
""",
        extra={"pipeline/params.txt": "0.5\n"},
    )
    out = json.loads(arl("eval", "--data", "data", cwd=lab).stdout)
    pipeline = str((lab / "pipeline").resolve())
    assert out["score"] == 0.5 and out["metrics"] == {"made_in": pipeline, "cwd": pipeline}


def test_results_are_dataclasses_to_whoever_asks() -> None:
    """EvalResult and SampleResult work with the dataclasses module as autoresearch-lab's did (asdict, replace,
    fields, a @dataclass subclass), while `arl eval` never imports it."""
    import dataclasses

    from arl import EvalResult, SampleResult

    r = EvalResult(1.0, {"n": 2}, [SampleResult("s1", 0.5)])
    assert dataclasses.is_dataclass(r) and dataclasses.is_dataclass(SampleResult)
    assert dataclasses.asdict(r) == {
        "score": 1.0,
        "metrics": {"n": 2},
        "sample_results": [{"sample_id": "s1", "score": 0.5, "error": None, "extra": {}}],
    }
    assert dataclasses.replace(r, score=2.0) == EvalResult(2.0, {"n": 2}, [SampleResult("s1", 0.5)])
    for cls in (EvalResult, SampleResult):  # the dataclass twin declares the same fields, in the same order
        assert tuple(f.name for f in dataclasses.fields(cls)) == cls._fields

    @dataclasses.dataclass
    class Noted(EvalResult):
        note: str = ""

    assert Noted(1.0, note="x") == Noted(score=1.0, metrics={}, sample_results=[], note="x")
    assert Noted(1.0).metrics == {} and Noted(1.0).metrics is not Noted(1.0).metrics
    assert EvalResult(1.0) != EvalResult(1.5) and repr(EvalResult(1.0)).startswith("EvalResult(score=1.0,")
    probe = "import sys; from arl import EvalResult as E; E(1.0) == E(1.0); print('dataclasses' in sys.modules)"
    seen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert seen.strip() == "False"


def test_metrics_serialise_objects_with_item(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        class Scalar:  # what a numpy scalar looks like to arl
            def __init__(self, v): self.v = v
            def item(self): return self.v
        return EvalResult(score=Scalar(0.75), metrics={"a": Scalar(2.5), "n": Scalar(3), "s": "text",
                          "nan": float("nan"), "nested": {"x": Scalar(1)}},
                          sample_results=[SampleResult("s1", Scalar(0.5), extra={"e": Scalar(7)})])
""",
    )
    out = json.loads(arl("eval", "--data", "data", cwd=lab).stdout)
    assert out["score"] == 0.75
    assert out["metrics"] == {"a": 2.5, "n": 3, "s": "text", "nan": "nan", "nested": {"x": 1}}
    diag = json.loads(arl("diagnose", "--data", "data", "--json", cwd=lab).stdout)
    assert diag["samples"] == [{"sample_id": "s1", "score": 0.5, "error": None, "extra": {"e": 7}}]


def test_numpy_scalars_serialise(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        import numpy as np
        return EvalResult(score=np.float64(1.25), metrics={"f32": np.float32(0.5), "i64": np.int64(4),
                          "b": np.bool_(True)}, sample_results=[SampleResult("a", np.float32(0.25))])
""",
    )
    out = json.loads(arl("eval", "--data", "data", cwd=lab).stdout)
    assert out["score"] == 1.25 and out["metrics"] == {"f32": 0.5, "i64": 4, "b": True}


def test_setup_and_teardown_are_paired(tmp_path: Path) -> None:
    body = """
    def setup(self):
        mark("setup")
        if os.environ.get("FAIL") == "setup": raise RuntimeError("setup broke")
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        mark("evaluate")
        if os.environ.get("FAIL") == "evaluate": raise ValueError("evaluate broke")
        if os.environ.get("FAIL") == "nan": return EvalResult(score=float("nan"))
        return EvalResult(score=1.0)
    def teardown(self):
        mark("teardown")
        if os.environ.get("FAIL") == "teardown": raise OSError("teardown broke")
"""
    lab = backend_lab(tmp_path, body)
    arl("eval", "--data", "data", cwd=lab)
    assert marks(lab) == ["setup", "evaluate", "teardown"]
    arl("eval", "--data", "data", "--repeats", "3", cwd=lab)
    assert marks(lab)[3:] == ["setup", "evaluate", "evaluate", "evaluate", "teardown"]
    for fail, expected, needle in [
        ("evaluate", ["setup", "evaluate", "teardown"], "B.evaluate() raised ValueError: evaluate broke"),
        ("nan", ["setup", "evaluate", "teardown"], "non-finite score"),
        ("setup", ["setup", "teardown"], "B.setup() raised RuntimeError: setup broke"),
        ("teardown", ["setup", "evaluate", "teardown"], "B.teardown() raised OSError: teardown broke"),
    ]:
        (lab / "marks.log").unlink()
        proc = arl("eval", "--data", "data", cwd=lab, check=False, env={"FAIL": fail})
        one_line_error(proc, needle)
        assert marks(lab) == expected, fail


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("    def evaluate(self, p, d, s=None):\n        raise KeyError('no such column: y')\n",
         ["evaluation failed", "raised KeyError", "no such column: y"]),
        ("    def evaluate(self, p, d, s=None):\n        raise ValueError('line one\\nline two')\n",
         ["ValueError: line one line two"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(score=float('nan'))\n",
         ["non-finite score (nan)"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(score=float('-inf'))\n",
         ["non-finite score (-inf)"]),
        ("    def evaluate(self, p, d, s=None):\n        return {'score': 1.0}\n",
         ["returned dict, not EvalResult"]),
        ("    def evaluate(self, p, d, s=None):\n        return 0.5\n", ["returned float, not EvalResult"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(score='1.0')\n",
         ["score of type str, not a number"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(score=True)\n",
         ["score of type bool"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(score=1.0, metrics=[1])\n",
         ["metrics that are not a dict"]),
        ("    def evaluate(self, p, d, s=None):\n        return EvalResult(1.0, sample_results=[('a', 1.0)])\n",
         ["sample result of type tuple"]),
        ("    def evaluate(self, p, d, s=None):\n        sys.exit(3)\n", ["raised SystemExit: 3"]),
        ("    def evaluate(self, p, d, s=None):\n        os._exit(9)\n", ["died", "exit code 9"]),
        ("    pass\n", ["NotImplementedError"]),
        ("    def __init__(self):\n        raise RuntimeError('no GPU')\n", ["B() raised RuntimeError: no GPU"]),
    ],
)  # fmt: skip
def test_backend_failures_are_one_line_errors(tmp_path: Path, body: str, needles: list[str]) -> None:
    lab = backend_lab(tmp_path, body)
    proc = arl("eval", "--data", "data", cwd=lab, check=False)
    line = one_line_error(proc, "evaluation failed", *needles)
    # scripts get the same message as JSON on stdout
    assert json.loads(proc.stdout) == {"error": line.removeprefix("arl: error: ")}
    if "NaN" in body or "nan" in body:  # and diagnose fails the same way (one case is enough)
        one_line_error(arl("diagnose", "--data", "data", cwd=lab, check=False), *needles)


def test_debug_shows_the_backends_traceback(tmp_path: Path) -> None:
    lab = backend_lab(tmp_path, "    def evaluate(self, p, d, s=None):\n        return helper_that_breaks()\n")
    proc = arl("eval", "--data", "data", "--debug", cwd=lab, check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "helper_that_breaks" in proc.stderr and "backend.py" in proc.stderr  # the child's own traceback


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[lab]\nname = "t"\n[backend]\nclass = "Nope"\n', ["has no class 'Nope'", "[backend] class"]),
        ('[lab]\nname = "t"\n[backend]\nclass = "B"\nmodule = "missing.py"\n', ["missing.py", "does not exist"]),
        ('[lab]\nname = "t"\n[backend]\nclass = "mark"\n', ["mark is not a class"]),
    ],
)
def test_backend_class_or_module_missing(tmp_path: Path, toml: str, needles: list[str]) -> None:
    lab = backend_lab(tmp_path, "    pass\n")
    (lab / "lab.toml").write_text(toml)
    one_line_error(arl("eval", "--data", "data", cwd=lab, check=False), *needles)


def test_backend_that_fails_to_import(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab", backend="import no_such_module_anywhere\n")
    one_line_error(arl("eval", "--data", "data", cwd=lab, check=False),
                   "importing backend.py failed", "no_such_module_anywhere")  # fmt: skip


def test_missing_data_folder(example: Path) -> None:
    proc = arl("eval", "--data", "no-such-data", cwd=example, check=False)
    one_line_error(proc, "data folder no-such-data does not exist")
    assert "error" in json.loads(proc.stdout)
    one_line_error(arl("diagnose", "--data", "no-such-data", cwd=example, check=False), "no-such-data")


def test_missing_pipeline_folder(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    (lab / "pipeline").rmdir()
    one_line_error(arl("eval", "--data", "data", cwd=lab, check=False), "pipeline folder", "pipeline_dir")


@pytest.mark.parametrize("stubborn", [False, True], ids=["polite", "ignores-sigterm"])
def test_eval_timeout_kills_the_evaluation(tmp_path: Path, stubborn: bool) -> None:
    body = f"""
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        if {stubborn}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "300"])
        (HERE / "pids").write_text(f"{{os.getpid()}} {{child.pid}}")
        while True:
            try:
                time.sleep(300)
            except Exception:  # a backend that swallows errors still cannot outlive the timeout
                pass
    def teardown(self):
        mark("teardown")
"""
    lab = backend_lab(tmp_path, body, timeout=1)
    t0 = time.monotonic()
    proc = arl("eval", "--data", "data", cwd=lab, check=False, timeout=30)
    elapsed = time.monotonic() - t0
    one_line_error(proc, "eval_timeout (1 s)", "killed")
    assert elapsed < 8, elapsed
    pids = [int(p) for p in (lab / "pids").read_text().split()]
    for pid in pids:
        wait_until(lambda pid=pid: process_gone(pid), timeout=5, what=f"pid {pid} to be gone")
    # a backend that lets SIGTERM through still gets its teardown
    assert marks(lab) == ([] if stubborn else ["teardown"])


def test_backend_output_does_not_spoil_the_json(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        print("chatty backend")
        os.system("echo from a subprocess")
        return EvalResult(score=2.0)
""",
    )
    proc = arl("eval", "--data", "data", "--json", cwd=lab)
    assert json.loads(proc.stdout) == json.loads(proc.stdout.strip())
    assert json.loads(proc.stdout)["score"] == 2.0
    assert "chatty backend" in proc.stderr and "from a subprocess" in proc.stderr


def test_eval_from_inside_the_pipeline_folder(example: Path) -> None:
    sub = example / "pipeline"
    out = json.loads(arl("eval", "--data", str(example / "data"), cwd=sub).stdout)
    assert math.isfinite(out["score"])


@pytest.mark.parametrize(
    "args",
    [
        ["eval"],
        ["eval", "--data", "data", "--repeats", "0"],
        ["diagnose", "--data", "data", "--top", "0"],
        ["diagnose", "--data", "data", "--top", "many"],
        ["results", "--format", "xml"],
        ["results", "--last", "0"],
        ["no-such-command"],
        ["eval", "--data", "data", "--no-such-flag"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    proc = arl(*args, cwd=write_lab(tmp_path / "lab"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("arl: error: "), proc.stderr


def test_the_example_can_clearly_be_improved_by_tuning_its_constants(example_lab: Path) -> None:
    baseline = json.loads(arl("eval", "--data", "data", cwd=example_lab).stdout)
    assert baseline["seconds"] < 1.0
    model = example_lab / "pipeline" / "model.py"
    text = model.read_text()
    for name, value in {"HEIGHT": 2.8, "SHARPNESS": 1.34, "CENTER": 0.0, "SLOPE": 0.47, "OFFSET": 0.99}.items():
        text = re.sub(rf"(?m)^{name} = .*$", f"{name} = {value}", text)
    model.write_text(text)
    tuned = json.loads(arl("eval", "--data", "data", cwd=example_lab).stdout)
    assert tuned["score"] < baseline["score"] / 3


def test_processes_the_backend_leaves_behind_are_stopped(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        child = subprocess.Popen(["sleep", "300"])
        (HERE / "pids").write_text(str(child.pid))
        return EvalResult(score=1.0)
""",
    )
    t0 = time.monotonic()
    arl("eval", "--data", "data", cwd=lab)
    assert time.monotonic() - t0 < 10
    pid = int((lab / "pids").read_text())
    wait_until(lambda: process_gone(pid), timeout=5, what=f"the backend's leftover process {pid} to be gone")


# ---- isolation: a forked child by default, a fresh interpreter on request ---------------------------------------

_WHO = """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        print("backend output")
        return EvalResult(score=1.0, metrics={"forked": "arl.cli" in sys.modules, "cwd": os.getcwd(),
                                              "session": os.getsid(0) == os.getpid()})
"""


@pytest.mark.parametrize("isolation", ["fork", "spawn", None])
def test_isolation_forks_by_default_and_spawns_on_request(tmp_path: Path, isolation: str | None) -> None:
    lab = backend_lab(tmp_path, _WHO)
    if isolation:
        with open(lab / "lab.toml", "a") as f:  # [backend] is the file's last table
            f.write(f'isolation = "{isolation}"\n')
    proc = arl("eval", "--data", "data", "--json", cwd=lab)
    metrics = json.loads(proc.stdout)["metrics"]
    # a forked child still has arl's modules loaded; a spawned one is a fresh interpreter
    assert metrics["forked"] is (isolation != "spawn")
    assert metrics["cwd"] == str((lab / "pipeline").resolve()) and metrics["session"] is True
    assert "backend output" in proc.stderr


def test_spawned_evaluation_is_killed_on_timeout_too(tmp_path: Path) -> None:
    body = """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "300"])
        (HERE / "pids").write_text(f"{os.getpid()} {child.pid}")
        time.sleep(300)
"""
    lab = backend_lab(tmp_path, body, timeout=1)
    with open(lab / "lab.toml", "a") as f:
        f.write('isolation = "spawn"\n')
    proc = arl("eval", "--data", "data", cwd=lab, check=False, timeout=30)
    one_line_error(proc, "eval_timeout (1 s)", "killed")
    for pid in [int(p) for p in (lab / "pids").read_text().split()]:
        wait_until(lambda pid=pid: process_gone(pid), timeout=5, what=f"pid {pid} to be gone")


def test_unknown_isolation_is_a_config_error(tmp_path: Path) -> None:
    lab = backend_lab(tmp_path, _WHO)
    with open(lab / "lab.toml", "a") as f:
        f.write('isolation = "thread"\n')
    one_line_error(arl("eval", "--data", "data", cwd=lab, check=False), "[backend] isolation", '"fork" or "spawn"')


def test_diagnose_shows_all_of_extra_for_one_sample(tmp_path: Path) -> None:
    lab = backend_lab(
        tmp_path,
        """
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        ids = sample_ids or ["a", "b"]
        long = {"why": "x" * 100 + "END"}
        return EvalResult(score=1.0, sample_results=[SampleResult(i, 1.0, extra=long) for i in ids])
""",
    )
    both = arl("diagnose", "--data", "data", cwd=lab).stdout
    assert "END" not in both and both.count("x" * 40) == 2  # a table of many samples keeps its width
    one = arl("diagnose", "--data", "data", "--sample", "a", cwd=lab).stdout
    assert "x" * 100 + 'END"}' in one
