"""The run's API broker as a process: started by `service-up`, stopped by `teardown`, like the host service.

The broker (arl/broker.py) holds the credential and is the agent's only way out: the container runs with
`--network none` and reaches it through its slot's unix socket in `.arl/broker/slot-K/`, mounted read-only."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.util import sh
from arl.util.fsutil import atomic_write

MOUNT = "/workspace/broker"
SOCKET = "broker.sock"
# agent -> (provider, the host variable naming a gateway, the public API). The broker appends the client's path
# (/v1/...) to the upstream, so an OpenAI base URL's own /v1 is dropped.
UPSTREAMS = {
    "claude": ("anthropic", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    "codex": ("openai", "OPENAI_BASE_URL", "https://api.openai.com"),
}
# The broker as arl runs it: arl.broker.broker with arl's prices (a module above this layer, named, not imported)
ENTRY = "arl.agents.brokered"
CODEX_PORT = 18951  # codex's base URL inside the container (its own loopback), forwarded to the socket


def folder(cfg: LabConfig) -> Path:
    return cfg.state_dir / "broker"


def slot_folder(state_dir: Path, slot: int) -> Path:
    """Slot k's own socket folder, mounted into its container alone: the broker knows each slot by its socket."""
    return state_dir / "broker" / f"slot-{slot}"


def pid_file(cfg: LabConfig) -> Path:
    return cfg.state_dir / "broker.pid"


def usage_file(cfg: LabConfig) -> Path:
    return cfg.state_dir / "logs" / "broker-usage.jsonl"


def spent_file(cfg: LabConfig) -> Path:
    """Written by the broker once the run's budget is spent (outside every slot's mount)."""
    return folder(cfg) / "budget-spent.json"


def allowed_models(cfg: LabConfig, agent: str, model: str) -> list[str]:
    """`[agent] models`, else the run's model and the cheap siblings its CLI calls itself (Claude Code asks a haiku
    model for titles and summaries); without a model, the provider's family (the CLI picks its default)."""
    if cfg.agent_models:
        return list(cfg.agent_models)
    if UPSTREAMS[agent][0] == "openai":
        return [model] if model else ["gpt-*", "o[0-9]*", "codex-*"]
    model = re.sub(r"\[\w+\]$", "", model)  # sonnet[1m]: the same model with a longer context
    if model in ("", "default", "best"):  # Claude Code's own choice
        return ["claude-*"]
    return ["opus", "sonnet", "haiku"] if model == "opusplan" else [model, "haiku"]


def mode(cfg: LabConfig, agent: str) -> str:
    """The agent's network: `[sandbox] network`, else the broker for an LLM agent arl can broker, else none."""
    if cfg.network:
        return cfg.network
    return "broker" if agent in UPSTREAMS else "none"


def upstream(agent: str, env: dict[str, str] | os._Environ[str]) -> str:
    provider, base_var, default = UPSTREAMS[agent]
    url = (env.get(base_var) or default).rstrip("/")
    return url.removesuffix("/v1") if provider == "openai" else url


def start(
    cfg: LabConfig, agent: str, credentials_file: Path | None = None, ready_timeout: float = 15.0, relayed: bool = False
) -> int:
    """The run's broker: a socket per slot, the run's models and budget (what it had spent before: a resumed run).
    `relayed`: the slots run in SLURM jobs that reach it through their relays and this host's gate (relay.py)."""
    from arl.broker import relay
    from arl.runstate import slots, state

    stop(cfg)  # one that is up but not as this run needs it (its sockets, its gate): never two
    st = state.load(cfg)
    numbers = (slots.numbers(st) if st.get("settings") else []) or [0]
    where = relay.host_socket if relayed else (lambda state_dir, k: slot_folder(state_dir, k) / SOCKET)
    socks = [where(cfg.state_dir, k) for k in numbers]
    for sock in socks:
        made_way(cfg, sock)
    if relayed:
        os.chmod(socks[0].parent, 0o700)  # no container mounts it: only the gate, this user, connects
    spent_file(cfg).unlink(missing_ok=True)
    logs = _made(cfg.state_dir / "logs")
    python, env = _python()
    argv = [python, *command(cfg, agent, credentials_file)]
    for sock in socks:
        argv += ["--socket", str(sock)]
    # The broker inherits arl's environment: that is where the credential is, and it never leaves the host.
    proc = sh.spawn(argv, logs / "broker.log", env=env)
    atomic_write(pid_file(cfg), f"{proc.pid}\n")
    if not sh.wait_ready(proc, lambda: all(sock.exists() for sock in socks), ready_timeout):
        stop(cfg)
        raise ArlError(f"the API broker did not start; see {logs / 'broker.log'}")
    if relayed:
        try:
            relay.start_gate(cfg, socks, python, env)
        except ArlError:
            stop(cfg)
            raise
    return proc.pid


def command(cfg: LabConfig, agent: str, credentials_file: Path | None = None) -> list[str]:
    """The broker's arguments after the interpreter, all but its sockets: the run's provider, models and budget
    (what it had spent before: a resumed run). A SLURM job adds its slot's socket and starts it beside its agent."""
    from arl.runstate import state

    st = state.load(cfg)
    settings = st.get("settings") or {}
    logs = _made(cfg.state_dir / "logs")
    model = settings.get("model") or cfg.agent_model
    argv = [
        "-m",
        ENTRY,
        "--provider",
        UPSTREAMS[agent][0],
        "--upstream",
        upstream(agent, os.environ),
        "--log",
        str(logs / "broker.jsonl"),
        "--usage",
        str(usage_file(cfg)),
        "--models",
        ",".join(allowed_models(cfg, agent, model)),
        "--spent-file",
        str(spent_file(cfg)),
        "--max-cost",
        repr(float(settings.get("max_cost") or 0.0)),
        "--spent",
        repr(float(st.get("cost", 0.0))),
    ]
    if cfg.allow_web:
        argv.append("--allow-web")
    if credentials_file is not None:
        argv += ["--credentials-file", str(credentials_file)]
    if os.environ.get("ARL_OAUTH_TOKEN_URL"):  # where an OAuth login is refreshed (default: Anthropic's console)
        argv += ["--oauth-token-url", os.environ["ARL_OAUTH_TOKEN_URL"]]
    return argv


def job_command_file(cfg: LabConfig) -> Path:
    """With the SLURM engine: the broker's command (no secret in it), which each slot's job starts beside its agent."""
    return folder(cfg) / "job-command.json"


def write_job_command(cfg: LabConfig, agent: str, credentials_file: Path | None = None) -> None:
    import json

    _made(folder(cfg))
    atomic_write(job_command_file(cfg), json.dumps([_python()[0], *command(cfg, agent, credentials_file)]))


def made_way(cfg: LabConfig, sock: Path) -> None:
    """The folders of a slot's socket, open to the container's user (nothing secret lives there), no old socket."""
    os.chmod(_made(folder(cfg)), 0o755)
    os.chmod(_made(sock.parent), 0o755)
    sock.unlink(missing_ok=True)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _python() -> tuple[str, dict[str, str]]:
    """An interpreter this user may run for the broker (standard library only), and its environment. A virtual
    environment's python can link into a folder the user cannot enter (a root-owned one): then the base
    interpreter runs it, with arl's folder on its path."""
    if os.access(sys.executable, os.X_OK):
        return sys.executable, dict(os.environ)
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    here = str(Path(__file__).resolve().parents[2])  # the folder that holds the arl package
    return str(base), {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}


def running(cfg: LabConfig, relayed: bool = False) -> bool:
    """The run's broker is up, and as the run needs it: for SLURM jobs' relays (`relayed`), on this host's side
    sockets with its gate; else on the slots' own sockets."""
    from arl.broker import relay
    from arl.runstate.state import pid_alive

    try:
        pid = int(pid_file(cfg).read_text().strip())
    except (OSError, ValueError):
        return False
    if relayed:
        return pid_alive(pid) and relay.host_socket(cfg.state_dir, 0).exists() and relay.reach(cfg) is not None
    return pid_alive(pid) and (slot_folder(cfg.state_dir, 0) / SOCKET).exists() and relay.reach(cfg) is None


def stop(cfg: LabConfig) -> None:
    from arl.broker import relay
    from arl.sandbox.service import stop_group

    stop_group(pid_file(cfg))
    relay.stop_gate(cfg)
