"""Starting a slot's agent: its prompt, its workspace (the best tree, or where the last session left it), its
notes, its container."""

from __future__ import annotations

import time
from pathlib import Path

from arl.agents.base import get_adapter
from arl.agents.launch import context
from arl.channel import channel
from arl.config.config import LabConfig
from arl.engines.choose import engine_of
from arl.errors import ArlError
from arl.git.gitobjects import pipeline_tree
from arl.history import results
from arl.loop.costs import transcript_path
from arl.loop.run import OK, data_dir, open_run
from arl.report import events
from arl.runstate import slots, state
from arl.runstate.runstate import RunState, image_of
from arl.sandbox.docker_run import agent_run, container_name, secret_env
from arl.sandbox.workspace import workspace
from arl.util import sh
from arl.util.fsutil import atomic_write


def start_container(cfg: LabConfig, st: RunState, slot: int = 0, reseed: bool = True) -> str:
    """Start the slot's agent. reseed: the workspace becomes the best tree (a new attempt); without it, a
    relaunched session finds the work its predecessor left (an outage or a clean end is no reason to lose it)."""
    settings = st["settings"]
    sl = slots.of(st, slot)
    launches = st.get("launches", 0) + 1
    # Every container start gets its own seed, so a restarted agent does not replay the same proposals.
    seed = (settings.get("seed") or st["run"] * 1000) + launches
    ctx = context(cfg, settings, seed=seed, st=st, slot=slot)
    if sl.get("last_end"):
        ctx.prompt = relaunch_preamble(cfg, st, slot) + ctx.prompt
    spec = get_adapter(settings["agent"]).launch(ctx)
    if spec.network == "bridge":
        sh.say(
            'arl: warning: the agent runs on docker\'s bridge network ([sandbox] network = "bridge"): it can reach '
            "the internet, other containers and every host service bound to 0.0.0.0 or the docker0 address"
        )
    control = slots.control_dir(cfg, slot)
    control.mkdir(parents=True, exist_ok=True)
    channel.make_way(control / "prompt.md")  # the channel is the agent's to write: take nothing for granted
    atomic_write(control / "prompt.md", ctx.prompt, fsync=False)
    channel.write_control(control / "expected.json", {"seq": sl.get("seq", 0)})
    write_results_view(cfg)
    name = container_name(cfg, st["run"], launches)
    engine = engine_of(cfg, st)
    engine.remove(name, grace=1)  # a leftover of the same name (a step re-run after a crash)
    ws = workspace(cfg, slot)
    if reseed or not ws.exists() or ws.restore_cut_short():
        ws.seed(pipeline_tree(cfg))  # the best tree, from git objects
    notes = notes_file(cfg, slot)  # the agent's memory across relaunches: host-kept, never committed
    if not notes.is_file() or notes.is_symlink():
        notes.unlink(missing_ok=True)
        atomic_write(notes, "", fsync=False)
    extra = {"ARL_SEED": str(seed), "ARL_AGENT": settings["agent"], "ARL_SLOT": str(slot)}
    cmd = agent_run(
        cfg,
        image=image_of(st),
        name=name,
        run=st["run"],
        data=data_dir(st),
        control=control,
        results_view=results_view(cfg),
        workspace=ws.mount(),
        notes=notes,
        spec=spec,
        host_env=ctx.host_env,
        extra_env=extra,
        gpus=engine.gpus(slot),
        slot=slot,
    )
    now = time.time()  # before the agent can call anything: the broker's count of this session starts here
    left = settings["max_hours"] * 3600 - (now - st.get("started", now)) if settings["max_hours"] else 0.0
    follower = engine.start(cmd, name, transcript_path(cfg, name), secret_env(spec), slot, st["run"], max(left, 1.0))
    events.record(cfg, st, slot, "launch", now)
    st.update(launches=launches, phase="running")
    sl.update(container=name, last_progress=now, launched_at=now, follower=follower, shown_bytes=0)
    sl["verdicts_since_launch"] = 0
    state.save(cfg, st)
    return name


def relaunch_preamble(cfg: LabConfig, st: RunState, slot: int = 0) -> str:
    """What a relaunched session needs to know first: it is not the first, why the last one ended, where things are."""
    from arl.history import results
    from arl.util.text import clean

    rows = results.read(cfg.results_file).rows
    best, _ = results.best_of(cfg, rows)
    mine = [r for r in rows if r["run"] == st["run"]]
    notes = [f"- experiment {r['id']} ({r['outcome']}): {clean(str(r['notes'] or ''))[:200]}" for r in mine[-3:]]
    return (
        "# You are a relaunched session\n\n"
        f"The previous agent session of this run ended ({clean(slots.of(st, slot).get('last_end', '?'))[:300]}). This "
        "run has recorded "
        f"{len(mine)} experiments so far; the best score is {best if best is not None else 'not set'}. Your "
        "workspace is as the last session left it: run `arl eval` to see where it stands (after your next "
        "discard the host restores the best version). Read /workspace/notes.md and /workspace/results.tsv first.\n"
        + ("Its last experiments:\n" + "\n".join(notes) + "\n" if notes else "")
        + "\n"
    )


def notes_file(cfg: LabConfig, slot: int = 0) -> Path:
    return cfg.state_dir / "notes" / f"{slot}.md"


def launch(lab: str | None, slot: int | None = None) -> int:
    """Start the slot's agent, or every slot's that is not running."""
    cfg, st = open_run(lab)
    for k in slots.numbers(st) if slot is None else [slot]:
        if k >= slots.count(st):
            raise ArlError(f"this run has {slots.count(st)} slots (0 to {slots.count(st) - 1}), not slot {k}")
        name = slots.of(st, k).get("container")
        if name and engine_of(cfg, st).state(name).alive:
            print(f"container {name} is already running")
            continue
        name = start_container(cfg, st, k)
        print(f"launched {name} ({st['settings']['agent']} agent{_slot_words(st, k)})")
    return OK


def _slot_words(st: RunState, slot: int) -> str:
    return f", slot {slot}" if slots.count(st) > 1 else ""


def results_view(cfg: LabConfig) -> Path:
    return cfg.state_dir / "results-view.tsv"


def write_results_view(cfg: LabConfig) -> None:
    """The copy of the history the agent reads: holdout scores blanked. Written in place, because the
    container bind-mounts this very file (a rename would leave it looking at the old one)."""
    text = results.view_text(cfg.results_file)
    path = results_view(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
