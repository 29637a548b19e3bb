"""`[engine]` of lab.toml and what the SLURM engine derives from it without a cluster: one-line errors naming the key,
the job's time from max_hours, a time_limit shorter than one experiment refused, the job's GPUs as container flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.broker.relay import bind_address
from arl.config import config
from arl.config.engine import address_parts, time_limit_minutes
from arl.engines.choose import engine_of
from arl.engines.slurm import Slurm
from arl.engines.slurm_probe import probe
from arl.errors import ArlError
from arl.sandbox.gpus import allocated_gpus, gpu_args
from tests.test_config import write_lab

BASE = '[lab]\nname = "t"\n\n[backend]\nclass = "B"\n\n'


def load(tmp_path: Path, engine: str) -> config.LabConfig:
    return config.load(write_lab(tmp_path / "lab", toml=BASE + "[engine]\n" + engine) / "lab.toml")


def test_defaults_are_the_local_engine(tmp_path: Path) -> None:
    cfg = config.load(write_lab(tmp_path / "lab", toml=BASE) / "lab.toml")
    assert cfg.engine.kind == "local" and engine_of(cfg).kind == "local"
    assert engine_of(cfg, {"settings": {"engine": "slurm"}}).kind == "slurm"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("engine", "needle"),
    [
        ('kind = "k8s"\n', "[engine] kind must be 'local' or 'slurm', not 'k8s'"),
        ('runtime = "lxc"\n', "[engine] runtime must be"),
        ('gpu_mode = "all"\n', "[engine] gpu_mode must be"),
        ('time_limit = "8 hours"\n', "[engine] time_limit is '8 hours': SLURM's form"),
        ("sbatch_args = [1]\n", "[engine] sbatch_args must be a list of strings"),
        ("partition = 3\n", "[engine] partition must be a string"),
        ('queue = "gpu"\n', "[engine] unknown key 'queue'"),
        ('broker = "login"\n', "[engine] broker must be 'job' or 'submit-host', not 'login'"),
        ('broker_address = "http://login1"\n', "[engine] broker_address is 'http://login1': HOST or HOST:PORT"),
        ('broker_address = "login1:99999"\n', "[engine] broker_address is 'login1:99999'"),
        ("broker_address = 7000\n", "[engine] broker_address must be a string"),
    ],
)
def test_bad_engine_tables_are_one_line_errors(tmp_path: Path, engine: str, needle: str) -> None:
    with pytest.raises(ArlError) as e:
        load(tmp_path, engine)
    assert needle in str(e.value) and "lab.toml" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("1:30", 1.5), ("8:00:00", 480), ("1-00:00:00", 1440), ("2-3", 2 * 1440 + 180), ("x", None)],
)
def test_slurm_time_formats(text: str, minutes: float | None) -> None:
    assert time_limit_minutes(text) == minutes


def test_job_time_and_resources(tmp_path: Path) -> None:
    engine = 'kind = "slurm"\npartition = "gpu"\naccount = "g"\ngres = "gpu:1"\nsbatch_args = ["--qos=q"]\n'
    cfg = load(tmp_path, engine)
    s = Slurm(cfg)
    assert s.resources() == ["--partition=gpu", "--account=g", "--gres=gpu:1", "--qos=q"]
    assert s.time_flag(3600 * 2) == ["--time=130"]  # what is left of the run, and slack for its end
    assert s.time_flag(0) == []  # no max_hours: the partition's default
    assert s.gpus(0) == ""  # the job's runner adds what the scheduler gave
    assert s.job_name(3, 1) == "arl-t-r3-s1"


def test_where_the_broker_runs(tmp_path: Path) -> None:
    assert load(tmp_path / "a", 'kind = "slurm"\n').engine.broker == "job"  # the default: beside the container
    cfg = load(tmp_path / "b", 'kind = "slurm"\nbroker = "submit-host"\nbroker_address = "10.1.0.5:7000"\n')
    assert (cfg.engine.broker, cfg.engine.broker_address) == ("submit-host", "10.1.0.5:7000")
    assert address_parts("10.1.0.5:7000") == ("10.1.0.5", 7000)
    assert address_parts("login1.cluster") == ("login1.cluster", 0)  # any free port
    assert bind_address(cfg) == ("10.1.0.5", 7000)


def test_a_time_limit_shorter_than_one_experiment_is_refused(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'kind = "slurm"\ntime_limit = "10"\n')
    with pytest.raises(ArlError, match="shorter than one experiment"):
        probe(Slurm(cfg), "img", iteration_timeout=900)  # refused before any job is submitted


def test_the_jobs_gpus_become_the_containers() -> None:
    assert allocated_gpus({"SLURM_JOB_GPUS": "2", "CUDA_VISIBLE_DEVICES": "0"}) == "2"  # the node's index
    assert allocated_gpus({"CUDA_VISIBLE_DEVICES": "1,3"}) == "1,3"
    assert allocated_gpus({}) == ""
    assert gpu_args("2", "docker") == ["--gpus", "device=2"]
    assert gpu_args("1,3", "docker") == ["--gpus", '"device=1,3"']  # docker's CSV needs the quotes
    assert gpu_args("1", "env") == ["--env", "CUDA_VISIBLE_DEVICES=1", "--env", "NVIDIA_VISIBLE_DEVICES=1"]
    assert gpu_args("", "docker") == []
