"""`make demo`: scaffold the example lab in a scratch git repository and run a short loop with the offline agent.

Run as `python -m arl.demo [--dir DIR] [--experiments N]`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path


def step(title: str, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    print(f"\n== {title}\n$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env)
    if proc.returncode != 0:
        sys.exit(f"demo: `{' '.join(cmd)}` failed with exit code {proc.returncode}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arl.demo")
    p.add_argument("--dir", default="demo-lab", help="scratch folder (recreated)")
    p.add_argument("--experiments", type=int, default=20)
    p.add_argument("--example", default="curve-fit")
    args = p.parse_args(argv)
    lab = Path(args.dir).resolve()
    if lab.exists():
        shutil.rmtree(lab)
    lab.mkdir(parents=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    step("a scratch git repository", ["git", "init", "-q", "-b", "main"], lab, env)
    for key, value in (("user.name", "arl demo"), ("user.email", "demo@example.com")):
        step(f"git identity {key}", ["git", "config", key, value], lab, env)
    step("scaffold the example lab", ["arl", "init", "--example", args.example], lab, env)
    step("commit it", ["git", "add", "-A"], lab, env)
    step("commit it", ["git", "commit", "-qm", "the example lab"], lab, env)
    step("build the sandbox images (a debootstrap base when nothing can be pulled)", ["arl", "image"], lab, env)
    step(
        "the research loop, as the lab's Makefile runs it",
        [
            "make",
            "research",
            "DATA=data",
            f"ARGS=--agent offline --max-iterations {args.experiments} --plateau-threshold 0 --seed 1",
        ],
        lab,
        env,
    )
    step("the results", ["arl", "results"], lab, env)
    step("the plot", ["arl", "plot", "-o", "progress.png"], lab, env)
    step("the report (the page the loop kept up to date during the run)", ["arl", "report"], lab, env)
    page = lab / ".arl" / "report" / "index.html"
    print(f"\ndemo done: the lab is {lab}, the plot {lab / 'progress.png'}, the report {page.as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
