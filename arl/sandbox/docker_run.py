"""The docker command lines of the sandbox: the agent's container and the host's verification container."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.sandbox.spec import LaunchSpec, Mount
from arl.util import sh

WORK = "/workspace"
HOME = "/tmp/home"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "lab"


def container_name(cfg: LabConfig, run: int, n: int, role: str = "agent") -> str:
    # Two labs may share a name (two clones, two branches' worktrees): the folder's hash keeps them apart.
    where = hashlib.sha256(str(cfg.root.resolve()).encode()).hexdigest()[:6]
    return f"arl-{slug(cfg.name)}-{where}-r{run}-{role}{n}"


def lab_mounts(cfg: LabConfig, files: bool = True) -> list[Mount]:
    """lab.toml, AGENT.md, the backend and what sits beside it that it may import or read (`[backend] files`:
    globs relative to its folder; not with files=False, as for the container that runs a split backend's pipeline,
    since they may be the scorer's reference answers); never .git, a hidden file, the pipeline, the results or
    arl's state."""
    keep = {cfg.path, cfg.agent_instructions, cfg.backend_module}
    skip = {cfg.pipeline_dir.resolve(), cfg.state_dir.resolve(), cfg.results_file.resolve()}
    folder = cfg.backend_module.parent
    for p in folder.iterdir():
        if p.resolve() in skip or p.name.startswith("."):
            continue
        if p.suffix == ".py" and p.is_file() or p.is_dir() and (p / "__init__.py").is_file():
            keep.add(p)
    for pattern in cfg.backend_files if files else ():
        for p in folder.glob(pattern):
            rel = p.relative_to(folder).parts
            inside = any(p.resolve() == s or p.resolve().is_relative_to(s) for s in skip)
            if not inside and not any(part.startswith(".") for part in rel):
                keep.add(p)
    return [
        Mount(p.resolve(), f"{WORK}/lab/{p.resolve().relative_to(cfg.root.resolve())}")
        for p in sorted(keep)
        if p.exists() and p.resolve().is_relative_to(cfg.root.resolve())
    ]


def _hardening(cfg: LabConfig, run: int, role: str, gpus: str | None = None) -> list[str]:
    """Labels, user, limits; `gpus`: the slot's device (default `[sandbox] gpus`)."""
    args = [
        "--label",
        f"arl.lab={cfg.name}",
        "--label",
        f"arl.run={run}",
        "--label",
        f"arl.role={role}",
        "--label",
        f"arl.root={cfg.root}",
        "--init",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        str(cfg.pids_limit),
        "--read-only",
        "--tmpfs",
        "/tmp:rw,exec,mode=1777,size=1g",
    ]
    if cfg.memory:
        args += ["--memory", cfg.memory, "--memory-swap", cfg.memory]
    if cfg.cpus:
        args += ["--cpus", cfg.cpus]
    gpus = cfg.gpus if gpus is None else gpus
    if gpus:
        args += ["--gpus", gpus]
    return args


def _mount_args(mounts: list[Mount]) -> list[str]:
    out: list[str] = []
    for m in mounts:
        if "," in str(m.host) or "," in m.container:
            raise ArlError(f"cannot mount {m.host}: a comma in the path")
        out += ["--mount", f"type=bind,src={m.host},dst={m.container}" + (",readonly" if m.read_only else "")]
    return out


def _base_env(cfg: LabConfig) -> dict[str, str]:
    from arl.git.gitobjects import algo

    return {
        "ARL_OBJECT_FORMAT": algo(cfg),  # the agent's `arl eval` names its tree the way this repository does
        "ARL_LAB": f"{WORK}/lab",
        "ARL_PIPELINE": f"{WORK}/pipeline",
        "ARL_DATA": f"{WORK}/data",
        "ARL_RESULTS": f"{WORK}/results.tsv",
        "HOME": HOME,
        "PYTHONDONTWRITEBYTECODE": "1",
        "ARL_SANDBOX": "1",
    }


def _env_args(env: dict[str, str], secrets: list[str] | None = None) -> list[str]:
    """`--env K=V`; a secret goes as `--env K`, its value taken from docker's own environment, so that the
    command line arl prints (and `ps` shows) never carries a credential."""
    out: list[str] = []
    for k, v in env.items():
        out += ["--env", k if k in (secrets or ()) else f"{k}={v}"]
    return out


def secret_env(spec: LaunchSpec) -> dict[str, str]:
    """The values of the secret variables, for the environment of the `docker run` process itself."""
    return {k: spec.env[k] for k in spec.secrets if k in spec.env}


def passthrough_env(cfg: LabConfig, host_env: dict[str, str]) -> dict[str, str]:
    """Only the variables `[sandbox] env` names; nothing else of the host environment goes in."""
    return {k: host_env[k] for k in cfg.env if k in host_env}


def _service(cfg: LabConfig, slot: int | None = None) -> tuple[list[Mount], dict[str, str], str]:
    """The host service, reached through a unix socket mounted in and forwarded to 127.0.0.1:PORT inside: the
    slot's own socket (None: the verifications'), so that each has its own cap of connections."""
    if cfg.host_service is None:
        return [], {}, ""
    from arl.sandbox.service import socket_dir, url

    port = cfg.host_service.port
    ready = "/tmp/.arl-forward-ready"
    prelude = (
        f"python3 -m arl.broker.forward tcp:127.0.0.1:{port} --to unix:{WORK}/service/service.sock --ready {ready} & "
        f"while [ ! -e {ready} ]; do sleep 0.01; done; "
    )
    return [Mount(socket_dir(cfg, slot).resolve(), f"{WORK}/service")], {"ARL_HOST_SERVICE_URL": url(cfg)}, prelude


def _network(spec: LaunchSpec) -> list[str]:
    if spec.network == "none":
        return ["--network", "none"]
    # host.docker.internal: a gateway or a local API server on the host's bridge address (ANTHROPIC_BASE_URL).
    return ["--network", "bridge", "--add-host", "host.docker.internal:host-gateway"]


def agent_run(
    cfg: LabConfig,
    *,
    image: str,
    name: str,
    run: int,
    data: Path,
    control: Path,
    results_view: Path,
    workspace: Mount,
    spec: LaunchSpec,
    notes: Path | None = None,
    host_env: dict[str, str],
    extra_env: dict[str, str] | None = None,
    gpus: str | None = None,
    slot: int = 0,
) -> Any:
    svc_mounts, svc_env, prelude = _service(cfg, slot)
    mounts = [
        workspace,  # the agent's private copy: the lab's own pipeline folder is never mounted
        Mount(data.resolve(), f"{WORK}/data"),
        *lab_mounts(cfg),
        Mount(results_view.resolve(), f"{WORK}/results.tsv"),
        Mount(control.resolve(), f"{WORK}/control", read_only=False),
        *svc_mounts,
        *([Mount(notes.resolve(), f"{WORK}/notes.md", read_only=False)] if notes else []),
        *spec.mounts,
    ]
    env = {
        **_base_env(cfg),
        "ARL_CONTROL": f"{WORK}/control",
        **passthrough_env(cfg, host_env),
        **(extra_env or {}),
        **svc_env,
        **spec.env,
    }
    # The prompt goes in on stdin from a file: variadic flags would swallow a trailing prompt argument.
    shell = prelude + 'mkdir -p "$HOME" && exec "$@"' + (f" < {WORK}/control/prompt.md" if spec.stdin_prompt else "")
    args = [
        "run",
        # Attached, not --detach: the host reads the agent's stdout straight from the container, as it is written,
        # so the engine's log rotation can never lose a line of it; docker must not relay our signals to it.
        "--sig-proxy=false",
        "--name",
        name,
        *_hardening(cfg, run, "agent", gpus),
        *_mount_args(mounts),
        *_env_args(env, spec.secrets),
        "--workdir",
        f"{WORK}/pipeline",
        *_network(spec),
        image,
        "sh",
        "-c",
        shell,
        "arl-agent",
        *spec.argv,
    ]
    return sh.docker()[args]


def verify_run(
    cfg: LabConfig,
    *,
    image: str,
    name: str,
    run: int,
    data: Path,
    repeats: int,
    pipeline: Path,
    command: list[str] | None = None,
    gpus: str | None = None,
) -> Any:
    """A fresh container with the checked-out tree read-only and the data: a single-phase backend's evaluation, which
    prints its `arl eval --json` (or runs `command` in the same place)."""
    mounts = [Mount(pipeline.resolve(), f"{WORK}/pipeline"), Mount(data.resolve(), f"{WORK}/data")]
    evaluation = command or ["arl", "eval", "--phase", "evaluate", "--json", "--repeats", str(repeats)]
    return phase_run(cfg, image=image, name=name, run=run, mounts=mounts, command=evaluation, gpus=gpus, service=True)


def phase_run(
    cfg: LabConfig,
    *,
    image: str,
    name: str,
    run: int,
    mounts: list[Mount],
    command: list[str],
    gpus: str | None = None,
    service: bool = False,
    lab_files: bool = True,
) -> Any:
    """A fresh, network-less container of the sandbox image with the lab's files and `mounts` (read-only unless said
    otherwise), running `command` in /workspace/pipeline; `service`: the host service is reachable (the pipeline's
    side only: it may be what the pipeline runs on); `lab_files`: `[backend] files` are mounted."""
    svc_mounts, svc_env, prelude = _service(cfg) if service else ([], {}, "")
    command = ["sh", "-c", prelude + 'exec "$@"', "arl-verify", *command] if prelude else command
    has_pipeline = any(m.container == f"{WORK}/pipeline" for m in mounts)
    args = [
        "run",
        "--rm",
        "--name",
        name,
        *_hardening(cfg, run, "verify", gpus),
        "--network",
        "none",
        *_mount_args([*mounts, *lab_mounts(cfg, lab_files), *svc_mounts]),
        *_env_args({**_base_env(cfg), **svc_env}),
        "--workdir",
        f"{WORK}/pipeline" if has_pipeline else "/tmp",
        image,
        *command,
    ]
    return sh.docker()[args]
