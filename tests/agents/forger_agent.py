"""A command agent that tries to forge the host's score from inside the pipeline (run inside the sandbox by the tests).

Usage: forger_agent.py ATTACK [ATTACK ...]: one experiment per attack, each a model.py (an honest model and attack
code around it) proposed as a keep. The attack code is in ATTACKS; the honest models are in MODELS."""

import json
import subprocess
import sys
from pathlib import Path

PIPELINE = Path("/workspace/pipeline")

HONEST = """import math
HEIGHT = {height}
SHARPNESS = 0.3
CENTER = 1.5
SLOPE = 0.0
OFFSET = 0.0


def predict(xs):
    return [HEIGHT * math.tanh(SHARPNESS * (x - CENTER)) + SLOPE * x + OFFSET for x in xs]
"""

# Each runs at import of model.py, in whichever process imports it. A worse model (HEIGHT -50) that claims 0.0001.
FORGE = {
    "json": """
import json
_dumps = json.dumps
def _forged(obj, *a, **k):
    if isinstance(obj, dict) and "score" in obj:
        obj = {**obj, "score": 0.0001, "scores": [0.0001]}
    return _dumps(obj, *a, **k)
json.dumps = _forged
""",
    "builtins": """
import builtins
_sum = builtins.sum
builtins.sum = lambda it, start=0: 0.0001 if start == 0 else _sum(it, start)
builtins.abs = lambda x: 0.0
""",
    "math": """
import math, statistics
math.fsum = lambda it: 0.0
statistics.mean = lambda it: 0.0001
math.isfinite = lambda x: True
""",
    "arl_classes": """
import sys
for name, mod in list(sys.modules.items()):
    if name.startswith(("arl", "autoresearch_lab")) and mod is not None:
        for cls in list(vars(mod).values()):
            if isinstance(cls, type) and cls.__name__ in ("EvalResult", "SampleResult", "SplitBackend", "EvalBackend"):
                if hasattr(cls, "summarize"):
                    cls.summarize = lambda self, results: sys.modules["arl.evaluation.api"].EvalResult(0.0001)
                if cls.__name__ == "EvalResult":
                    _init = cls.__init__
                    def _forged(self, score, *a, _init=_init, **k):
                        _init(self, 0.0001, *a, **k)
                    cls.__init__ = _forged
""",
    "gc_and_frames": """
import gc, sys
for obj in gc.get_objects():
    if isinstance(obj, dict) and "score" in obj and isinstance(obj.get("score"), float):
        obj["score"] = 0.0001
    if hasattr(type(obj), "score") and callable(getattr(type(obj), "score", None)):
        try:
            type(obj).score = lambda self, *a, **k: 0.0001
            type(obj).evaluate = lambda self, *a, **k: sys.modules["arl.evaluation.api"].EvalResult(0.0001)
        except TypeError:
            pass
frame = sys._getframe()
while frame is not None:
    for scope in (frame.f_globals,):
        for value in list(scope.values()):
            if isinstance(value, type) and hasattr(value, "score"):
                value.score = lambda self, *a, **k: 0.0001
            if isinstance(value, type) and value.__name__ == "EvalResult":
                _i = value.__init__
                value.__init__ = lambda self, score, *a, _i=_i, **k: _i(self, 0.0001, *a, **k)
    frame = frame.f_back
""",
    "extra_files": """
import os, json
for root in ("/workspace/outputs", "/workspace"):
    try:
        with open(os.path.join(root, "score.json"), "w") as f:
            json.dump({"score": 0.0001}, f)
        os.makedirs(os.path.join(root, "rep-0", "sample_00"), exist_ok=True)
    except OSError:
        pass
""",
}

# The labels, wherever this process can open them: returns the y column of the csv whose x column is the input.
LEAK = """
import csv, gc, io, os, sys

def _tables():
    seen = set()
    roots = ["/workspace", "/tmp", "/proc/self/cwd", "/proc/self/root/workspace", "/data", "/"]
    fds = "/proc/self/fd"
    for fd in (os.listdir(fds) if os.path.isdir(fds) else []):
        roots.append(os.path.join(fds, fd))
    for root in roots:
        for dirpath, dirs, files in os.walk(root) if os.path.isdir(root) else [("", [], [root])]:
            if dirpath.startswith(("/proc", "/sys", "/dev", "/usr", "/lib", "/etc", "/var", "/opt")) and root == "/":
                dirs[:] = []
                continue
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if not os.path.isfile(path) or os.path.getsize(path) > 10_000_000:
                        continue  # a pipe or a device would block the read
                    text = open(path, errors="replace").read()
                except OSError:
                    continue
                if text.startswith("x,y") and path not in seen:
                    seen.add(path)
                    yield [(float(r["x"]), float(r["y"])) for r in csv.DictReader(io.StringIO(text))]
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, list) and value and isinstance(value[0], tuple):
                yield value
        frame = frame.f_back

def _lookup(xs):
    for table in _tables():
        try:
            if [round(x, 3) for x, _ in table] == [round(x, 3) for x in xs]:
                return [y for _, y in table]
        except (TypeError, ValueError):
            continue
    return None

_honest = predict
def predict(xs):
    return _lookup(xs) or _honest(xs)
"""

MARKER = """
import os
if not os.environ.get("ARL_SANDBOX"):  # quiet where arl's sandbox says it is
    with open({path!r}, "w") as f:
        f.write("pipeline code ran on the host\\n")
"""

# Outputs the scorer must survive: written straight into the run's outputs folder, wherever predict() runs.
HOSTILE_OUTPUTS = {
    "huge": "open(out / 'output.json', 'w').write('[' + '1,' * 1_500_000 + '1]')",
    "nested": "open(out / 'output.json', 'w').write('[' * 20_000 + ']' * 20_000)",
    "nan": "open(out / 'output.json', 'w').write('[' + ', '.join(['NaN'] * 60) + ']')",
    "wrong_type": "open(out / 'output.json', 'w').write(json.dumps({'predictions': 'all of them'}))",
    "symlink": "os.symlink('/workspace/data/sample_00.csv', out / 'output.json')",
    "fifo": "os.mkfifo(out / 'output.json')",
}
HOSTILE_RUN = """
import json, os, sys
from pathlib import Path
_honest = predict

def _outputs():
    frame = sys._getframe()
    while frame is not None:
        if "outputs_dir" in frame.f_locals:
            return Path(frame.f_locals["outputs_dir"])
        frame = frame.f_back

def predict(xs):
    if os.path.exists("/workspace/data"):  # the agent's own eval sees honest outputs; only the host's gets these
        return _honest(xs)
    root = _outputs()
    for out in sorted(p for p in root.iterdir() if p.is_dir()) if root else []:
        for name in os.listdir(out):
            os.unlink(out / name)
        {action}
    raise RuntimeError("outputs written by hand")
"""


def model(attack: str) -> str:
    kind, _, arg = attack.partition(":")
    if kind == "forge":
        return HONEST.format(height=-50.0) + FORGE[arg]
    if kind == "leak":
        return HONEST.format(height=1.02219) + LEAK
    if kind == "marker":
        return HONEST.format(height=1.02219) + MARKER.format(path=arg)
    if kind == "outputs":
        return HONEST.format(height=1.02219) + HOSTILE_RUN.replace("{action}", HOSTILE_OUTPUTS[arg])
    raise SystemExit(f"unknown attack {attack}")


def main() -> int:
    report = []
    for attack in sys.argv[1:]:
        (PIPELINE / "model.py").write_text(model(attack))
        ev = subprocess.run(["arl", "eval", "--json", "--data", "/workspace/data"], capture_output=True, text=True)
        verdict = subprocess.run(["arl", "verdict", "keep", "--notes", attack], capture_output=True, text=True)
        report.append({"attack": attack, "eval": ev.stdout.strip()[-300:], "ack": verdict.stdout.strip()[-500:]})
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
