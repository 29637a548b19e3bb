"""The run's API broker as a process: started by `service-up`, stopped by `teardown`, like the host service.

The broker (arl/broker.py) holds the credential and is the agent's only way out: the container runs with
`--network none` and reaches it through a unix socket in `.arl/broker/`, mounted read-only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from arl.errors import ArlError
from arl.lab.config import LabConfig
from arl.util.fsutil import atomic_write

MOUNT = "/workspace/broker"
SOCKET = "broker.sock"
# agent -> (provider, the host variable naming a gateway, the public API). The broker appends the client's path
# (/v1/...) to the upstream, so an OpenAI base URL's own /v1 is dropped.
UPSTREAMS = {
    "claude": ("anthropic", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    "codex": ("openai", "OPENAI_BASE_URL", "https://api.openai.com"),
}
CODEX_PORT = 18951  # codex's base URL inside the container (its own loopback), forwarded to the socket


def folder(cfg: LabConfig) -> Path:
    return cfg.state_dir / "broker"


def pid_file(cfg: LabConfig) -> Path:
    return cfg.state_dir / "broker.pid"


def usage_file(cfg: LabConfig) -> Path:
    return cfg.state_dir / "logs" / "broker-usage.jsonl"


def mode(cfg: LabConfig, agent: str) -> str:
    """The agent's network: `[sandbox] network`, else the broker for an LLM agent arl can broker, else none."""
    if cfg.network:
        return cfg.network
    return "broker" if agent in UPSTREAMS else "none"


def upstream(agent: str, env: dict[str, str] | os._Environ[str]) -> str:
    provider, base_var, default = UPSTREAMS[agent]
    url = (env.get(base_var) or default).rstrip("/")
    return url.removesuffix("/v1") if provider == "openai" else url


def start(cfg: LabConfig, agent: str, credentials_file: Path | None = None, ready_timeout: float = 15.0) -> int:
    provider = UPSTREAMS[agent][0]
    sock = folder(cfg) / SOCKET
    sock.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(sock.parent, 0o755)  # the container's user connects through it; nothing secret lives there
    sock.unlink(missing_ok=True)
    logs = cfg.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python, env = _python()
    argv = [
        python, "-m", "arl.sandbox.broker", "--socket", str(sock), "--provider", provider,
        "--upstream", upstream(agent, os.environ),
        "--log", str(logs / "broker.jsonl"), "--usage", str(usage_file(cfg)),
    ]  # fmt: skip
    if credentials_file is not None:
        argv += ["--credentials-file", str(credentials_file)]
    if os.environ.get("ARL_OAUTH_TOKEN_URL"):  # where an OAuth login is refreshed (default: Anthropic's console)
        argv += ["--oauth-token-url", os.environ["ARL_OAUTH_TOKEN_URL"]]
    with open(logs / "broker.log", "ab") as log:
        # The broker inherits arl's environment: that is where the credential is, and it never leaves the host.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # fmt: skip
    atomic_write(pid_file(cfg), f"{proc.pid}\n")
    deadline = time.monotonic() + ready_timeout
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(cfg)
            raise ArlError(f"the API broker did not start; see {logs / 'broker.log'}")
        time.sleep(0.02)
    return proc.pid


def _python() -> tuple[str, dict[str, str]]:
    """An interpreter this user may run for the broker (standard library only), and its environment. A virtual
    environment's python can link into a folder the user cannot enter (a root-owned one): then the base
    interpreter runs it, with arl's folder on its path."""
    if os.access(sys.executable, os.X_OK):
        return sys.executable, dict(os.environ)
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    here = str(Path(__file__).resolve().parents[2])  # the folder that holds the arl package
    return str(base), {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}


def running(cfg: LabConfig) -> bool:
    from arl.lab.state import pid_alive

    try:
        pid = int(pid_file(cfg).read_text().strip())
    except (OSError, ValueError):
        return False
    return pid_alive(pid) and (folder(cfg) / SOCKET).exists()


def stop(cfg: LabConfig) -> None:
    from arl.sandbox.service import stop_group

    stop_group(pid_file(cfg))
