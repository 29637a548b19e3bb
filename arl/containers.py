"""Reading container state through the Docker SDK (the one thing the CLI is clumsy at), and removing ours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import sh
from .errors import ArlError

_client: Any = None


def client() -> Any:
    global _client
    if _client is None:
        try:
            import docker

            _client = docker.from_env(timeout=30)
            _client.ping()
        except Exception as e:
            _client = None
            raise ArlError(f"cannot reach the Docker engine: {e}")
    return _client


@dataclass
class State:
    exists: bool
    status: str = "missing"  # created | running | paused | exited | dead | missing
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""

    @property
    def alive(self) -> bool:
        return self.status in ("created", "running", "paused", "restarting")


def state(name: str) -> State:
    import docker.errors

    try:
        c = client().containers.get(name)
    except docker.errors.NotFound:
        return State(exists=False)
    s = c.attrs.get("State", {})
    return State(
        exists=True,
        status=s.get("Status", "unknown"),
        exit_code=s.get("ExitCode"),
        oom_killed=bool(s.get("OOMKilled")),
        error=s.get("Error", ""),
    )


def logs(name: str) -> bytes:
    import docker.errors

    try:
        return client().containers.get(name).logs(stdout=True, stderr=False)
    except (docker.errors.NotFound, docker.errors.APIError):  # gone, or dead / being removed (409)
        return b""


def stderr_tail(name: str, lines: int = 5) -> str:
    import docker.errors

    try:
        raw = client().containers.get(name).logs(stdout=False, stderr=True, tail=lines)
    except docker.errors.NotFound:
        return ""
    return raw.decode(errors="replace").strip()


def pause(name: str) -> bool:
    if state(name).status != "running":
        return False
    code, _, _ = sh.run(sh.docker()["pause", name], ok=None)
    return code == 0


def unpause(name: str) -> None:
    if state(name).status == "paused":
        sh.run(sh.docker()["unpause", name], ok=None)


def stop(name: str, grace: float = 5.0) -> None:
    """SIGINT (agents save and exit), then docker stop (SIGTERM, SIGKILL), then remove. --init forwards them."""
    st = state(name)
    if not st.exists:
        return
    # A frozen agent stays frozen: thawing it to say goodbye would let it start one more edit.
    if st.status == "running":
        sh.run(sh.docker()["kill", "--signal", "INT", name], ok=None)
        try:
            client().containers.get(name).wait(timeout=grace)
        except Exception:
            sh.run(sh.docker()["stop", "--time", str(int(grace)), name], ok=None)
    sh.run(sh.docker()["rm", "--force", name], ok=None)


def ours(lab_root: str) -> list[str]:
    """Names of the containers of this lab (by label), running or not."""
    found = client().containers.list(all=True, filters={"label": f"arl.root={lab_root}"})
    return [c.name for c in found]
