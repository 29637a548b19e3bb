"""`arl-step launch`: start the agent's container (idempotent: a running one is left alone)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .. import containers, sh, state, verdicts
from ..agents.launch import context
from ..agents.registry import get_adapter
from ..config import LabConfig
from ..fsutil import atomic_write
from ..gitobjects import pipeline_tree
from ..sandbox import agent_run, container_name, secret_env
from ..workspace import workspace
from .common import OK, data_dir, open_run, results_view, write_results_view


def start_container(cfg: LabConfig, st: dict[str, Any], slot: int = 0) -> str:
    settings = st["settings"]
    launches = st.get("launches", 0) + 1
    # Every container start gets its own seed, so a restarted agent does not replay the same proposals.
    seed = (settings["seed"] if settings.get("seed") is not None else st["run"] * 1000) + launches
    ctx = context(cfg, settings, seed=seed)
    spec = get_adapter(settings["agent"]).launch(ctx)
    control = state.control_dir(cfg)
    control.mkdir(parents=True, exist_ok=True)
    verdicts.make_way(control / "prompt.md")  # the channel is the agent's to write: take nothing for granted
    atomic_write(control / "prompt.md", ctx.prompt, fsync=False)
    verdicts.write_control(control / "expected.json", {"seq": st["seq"]})
    write_results_view(cfg)
    name = container_name(cfg, st["run"], launches)
    containers.stop(name, grace=1)  # a leftover of the same name (a step re-run after a crash)
    ws = workspace(cfg, slot)
    ws.seed(pipeline_tree(cfg))  # the best tree, from git objects
    extra = {"ARL_SEED": str(seed), "ARL_AGENT": settings["agent"]}
    cmd = agent_run(
        cfg,
        image=st["image"],
        name=name,
        run=st["run"],
        data=data_dir(st),
        control=control,
        results_view=results_view(cfg),
        workspace=ws.mount(),
        spec=spec,
        host_env=ctx.host_env,
        extra_env=extra,
    )
    sh.run(cmd, env=secret_env(spec))
    st.update(container=name, launches=launches, last_progress=time.time(), phase="running")
    state.save(cfg, st)
    return name


def launch(lab: str | None) -> int:
    cfg, st = open_run(lab)
    name = st.get("container")
    if name and containers.state(name).alive:
        print(f"container {name} is already running")
        return OK
    name = start_container(cfg, st)
    print(f"launched {name} ({st['settings']['agent']} agent)")
    return OK


def from_args(args: argparse.Namespace) -> int:
    return launch(args.lab)
