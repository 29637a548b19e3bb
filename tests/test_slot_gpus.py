"""A GPU per slot (`[sandbox] slot_gpus`): slot k's agent and the verification of its keeps get `--gpus
device=<k-th>`; fewer GPUs than slots is refused at preflight, before anything starts. No GPU is needed to check the
command lines arl builds."""

from __future__ import annotations

from pathlib import Path

from arl.config.context import open_lab
from arl.runstate import slots
from arl.sandbox import docker_run as sandbox

from .conftest import BIN, LabMaker, run


def gpu_lab(make_lab: LabMaker, agents: int) -> Path:
    """The example with two GPUs named for `agents` slots; no agent runs."""
    return make_lab(image=None, settings={"sandbox": {"slot_gpus": ["2", "5"]}, "run": {"agents": agents}})


def test_each_slot_gets_its_own_gpu(make_lab: LabMaker, tmp_path: Path) -> None:
    cfg = open_lab(str(gpu_lab(make_lab, 2)))
    assert [slots.gpu_for(cfg, k) for k in (0, 1)] == ["device=2", "device=5"]
    for k, device in ((0, "device=2"), (1, "device=5")):
        args = sandbox.verify_run(cfg, image="i", name="n", run=1, data=tmp_path, repeats=1, pipeline=tmp_path,
                                  gpus=slots.gpu_for(cfg, k)).formulate()  # fmt: skip
        assert args[args.index("--gpus") + 1] == device and args.count("--gpus") == 1


def test_fewer_gpus_than_slots_is_refused_at_preflight(make_lab: LabMaker) -> None:
    root = gpu_lab(make_lab, 3)
    proc = run([str(BIN / "arl-step"), "preflight", "--data", "data", "--agent", "offline"], cwd=root, check=False)
    assert proc.returncode == 1
    assert proc.stderr == "arl-step: error: 3 agents but [sandbox] slot_gpus names 2 GPUs: one GPU per slot\n"
    assert not (root / ".arl" / "lock").exists()
