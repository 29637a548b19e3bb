"""A lab with a real host service (an HTTP server bound to 127.0.0.1 that the backend must call)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, arl, git, run
from .loophelpers import check_history, cleanup_containers, containers_of, rows, set_toml, wait_for

SERVICE = """
import http.server, os, pathlib, subprocess, sys
port = int(sys.argv[1])
# A child of its own, to prove that the whole process group is stopped.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
pathlib.Path("service.pids").write_text(f"{os.getpid()} {child.pid}")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"1.5"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""

# Single-phase (evaluate only): the evaluation itself asks the host service, wherever it runs.
BACKEND = """
import os, urllib.request
from backend import CurveFitBackend
from arl import EvalBackend, EvalResult

class ServiceBackend(EvalBackend):
    def evaluate(self, pipeline_dir, data_dir, sample_ids=None):
        url = os.environ["ARL_HOST_SERVICE_URL"]
        weight = float(urllib.request.urlopen(url + "/weight", timeout=5).read())
        b = CurveFitBackend()
        ids = sample_ids or b.samples(data_dir)
        r = b.summarize([b.score_sample(data_dir, i, b.predict(pipeline_dir, b.inputs(data_dir, i)), None)
                         for i in ids])
        return EvalResult(score=r.score * weight, metrics={**r.metrics, "weight": weight},
                          sample_results=r.sample_results)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def service_lab(example_lab: Path) -> Path:
    port = free_port()
    (example_lab / "service.py").write_text(SERVICE)
    (example_lab / "service_backend.py").write_text(textwrap.dedent(BACKEND))
    set_toml(example_lab, "backend", "module", "service_backend.py")
    set_toml(example_lab, "backend", "class", "ServiceBackend")
    text = (example_lab / "lab.toml").read_text()
    text += f'\n[backend.host_service]\ncommand = ["python3", "service.py", "{port}"]\nport = {port}\n'
    (example_lab / "lab.toml").write_text(text)
    (example_lab / ".gitignore").write_text((example_lab / ".gitignore").read_text() + "service.pids\n")
    git(example_lab, "add", "-A")
    git(example_lab, "commit", "-qm", "service lab")
    return example_lab


def test_host_eval_starts_and_stops_the_service(service_lab: Path) -> None:
    out = arl("eval", "--data", "data", "--json", cwd=service_lab)
    assert '"weight": 1.5' in out.stdout
    pids = [int(p) for p in (service_lab / "service.pids").read_text().split()]
    wait_for(lambda: not any(alive(p) for p in pids), 10, "the service group to be gone")


def test_port_in_use_is_an_error(service_lab: Path) -> None:
    port = int((service_lab / "lab.toml").read_text().split("port = ")[-1].split()[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        out = arl("eval", "--data", "data", "--json", cwd=service_lab, check=False)
    assert out.returncode == 1
    assert f"port {port} is already in use" in out.stderr


# Writes what it was started with (argv and the two folders), then serves like SERVICE.
RECORDING = """
import json, os, pathlib, sys
pathlib.Path("started.json").write_text(json.dumps(
    {"argv": sys.argv[1:], "data": os.environ.get("ARL_DATA_DIR"), "pipeline": os.environ.get("ARL_PIPELINE_DIR")}))
sys.argv = [sys.argv[0], sys.argv[-1]]
exec(compile(pathlib.Path("service.py").read_text(), "service.py", "exec"))
"""


def _with_command(lab: Path, command: str) -> int:
    """The lab's host service, started by `command` (TOML), on a free port it returns."""
    port = free_port()
    (lab / "record service.py").write_text(RECORDING)
    text = (lab / "lab.toml").read_text().split("\n[backend.host_service]")[0]
    command = command.replace("PORT", str(port))
    (lab / "lab.toml").write_text(text + f"\n[backend.host_service]\ncommand = {command}\nport = {port}\n")
    return port


def _started_by_the_run(lab: Path) -> dict[str, Any]:
    """`arl-step preflight` + `service-up` as `make research` runs them; what the service saw; then service-down."""
    (lab / "started.json").unlink(missing_ok=True)
    run([str(BIN / "arl-step"), "preflight", "--data", "data", "--agent", "offline"], cwd=lab)
    try:
        run([str(BIN / "arl-step"), "service-up"], cwd=lab)
        wait_for(lambda: (lab / "started.json").is_file(), 10, "the service to start")
        return json.loads((lab / "started.json").read_text())
    finally:
        run([str(BIN / "arl-step"), "service-down"], cwd=lab)
        pids = [int(p) for p in (lab / "service.pids").read_text().split()]
        wait_for(lambda: not any(alive(p) for p in pids), 10, "the service group to be gone")


def test_a_string_command_runs_through_sh_with_the_data_and_pipeline_dirs(service_lab: Path) -> None:
    # a shell line: a variable, quoting and `&&` only a shell understands
    _with_command(service_lab, """'test -d "$ARL_DATA_DIR" && exec python3 "record service.py" "$ARL_DATA_DIR" PORT'""")
    seen = _started_by_the_run(service_lab)
    data = str((service_lab / "data").resolve())
    assert seen == {"argv": [data, seen["argv"][-1]], "data": data, "pipeline": str(service_lab / "pipeline")}


def test_a_list_command_runs_as_argv_with_the_data_and_pipeline_dirs(service_lab: Path) -> None:
    # one argument with a space and a `$`: neither split nor expanded
    _with_command(service_lab, """["python3", "record service.py", "a b $HOME", "PORT"]""")
    seen = _started_by_the_run(service_lab)
    assert seen["argv"][0] == "a b $HOME"
    assert seen["data"] == str((service_lab / "data").resolve())
    assert seen["pipeline"] == str(service_lab / "pipeline")
    # a host-side `arl eval` starts it too, with the data it evaluates (--data, no ARL_DATA needed)
    (service_lab / "started.json").unlink()
    out = arl("eval", "--data", "data", "--json", cwd=service_lab)
    assert '"weight": 1.5' in out.stdout
    assert json.loads((service_lab / "started.json").read_text())["data"] == str((service_lab / "data").resolve())


@pytest.mark.docker
def test_full_run_reaches_the_service_from_the_sandbox(service_lab: Path, base_image: str) -> None:
    try:
        out = arl(
            "run",
            "--data",
            "data",
            "--agent",
            "offline",
            "--max-iterations",
            "4",
            "--plateau-threshold",
            "0",
            "--seed",
            "5",
            cwd=service_lab,
            timeout=300,
            env={"ARL_BASE_FROM": "debootstrap"},
        )
    finally:
        cleanup_containers(service_lab)
    assert "forwarded to the sandbox" in out.stdout
    rs = check_history(service_lab)
    assert len(rs) == 5
    # The baseline and every keep were verified in --network none containers: the service answered there.
    assert rs[0]["verified_score"] and '"weight": 1.5' in rs[0]["metrics"]
    # The agent's own evaluations reached it too: its verdicts carry scores.
    assert all(r["score"] for r in rs[1:] if r["outcome"] in ("keep", "discard", "vetoed")), rows(service_lab)
    pids = [int(p) for p in (service_lab / "service.pids").read_text().split()]
    wait_for(lambda: not any(alive(p) for p in pids), 10, "no process of the service to survive")
    assert not (service_lab / ".arl" / "service.pid").exists()
    assert not containers_of(service_lab)
    assert os.path.exists(service_lab / ".arl" / "logs" / "service.log")


def forwarder_pid(lab: Path) -> int | None:
    try:
        pid = int((lab / ".arl" / "forward.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def test_a_dead_forwarder_is_restarted_once_then_the_run_stops(service_lab: Path, base_image: str) -> None:
    """The sandbox's way to the service is checked with the service: killed, it comes back once; killed again, the
    run ends with the reason instead of going on with every connection refused."""
    argv = [str(BIN / "arl"), "run", "--data", "data", "--agent", "offline", "--max-iterations", "500"]
    argv += ["--plateau-threshold", "0", "--seed", "5"]
    env = {**os.environ, "ARL_BASE_FROM": "debootstrap"}
    proc = subprocess.Popen(argv, cwd=service_lab, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    try:
        # once the loop runs (an experiment recorded): then the run waits on the agent most of the time
        first = wait_for(lambda: len(rows(service_lab)) > 1 and forwarder_pid(service_lab), 180, "the loop")
        os.killpg(first, signal.SIGKILL)
        second = wait_for(lambda: (p := forwarder_pid(service_lab)) != first and p, 60, "the forwarder restarted")
        os.killpg(second, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not out:
            out, _ = proc.communicate(timeout=10)
        cleanup_containers(service_lab)
    assert "the host service's forwarder to the sandbox died; restarting it once" in out, out[-3000:]
    assert "stop: the host service's forwarder to the sandbox died again after one restart" in out, out[-3000:]
    assert proc.returncode != 0 and not containers_of(service_lab), out[-3000:]  # a stop for a failure


def _running_agents(lab: Path) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "--filter", f"label=arl.root={lab.resolve()}", "--filter", "label=arl.role=agent"]
        + ["--filter", "status=running", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return out if len(out) == 2 else []


def _inside(name: str) -> str:
    """What the agent's container sees of the service: its socket folder, and the service's answer through it."""
    probe = "import os, urllib.request as u; print(u.urlopen(os.environ['ARL_HOST_SERVICE_URL']).read().decode())"
    cmd = ["docker", "exec", name, "sh", "-c", f'ls -A /workspace/service && python3 -c "{probe}"']
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""  # a container frozen for a decision answers a moment later


@pytest.mark.docker
def test_each_slot_reaches_the_service_through_its_own_socket(service_lab: Path, base_image: str) -> None:
    """Two slots: the forwarder listens on one socket per slot and one for the verifications, each in its own folder;
    each agent's container mounts its own slot's folder only (it sees one socket) and reaches the service through
    it; the verification containers mount the verifications' folder."""
    set_toml(service_lab, "run", "agents", 2)
    # agents that propose nothing: no decision pauses a container while the test execs into it (a `docker exec`
    # into a frozen container blocks, and holds the engine's lock on it, so the decider's unpause never returns)
    set_toml(service_lab, "agent", "command", ["sh", "-c", "sleep 600"])
    git(service_lab, "commit", "-qam", "two agents")
    argv = [str(BIN / "arl"), "run", "--data", "data", "--agent", "command", "--max-iterations", "500"]
    argv += ["--plateau-threshold", "0", "--seed", "5"]
    env = {**os.environ, "ARL_BASE_FROM": "debootstrap"}
    proc = subprocess.Popen(argv, cwd=service_lab, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    svc = service_lab / ".arl" / "svc"
    try:
        names = wait_for(lambda: _running_agents(service_lab), 240, "both agents running")
        for name in names:
            info = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True).stdout)[0]
            slot = next(e.split("=", 1)[1] for e in info["Config"]["Env"] if e.startswith("ARL_SLOT="))
            sources = [m["Source"] for m in info["Mounts"] if m["Destination"] == "/workspace/service"]
            assert sources == [str((svc / f"slot-{slot}").resolve())], (name, info["Mounts"])
            assert wait_for(lambda n=name: _inside(n), 60, f"{name} to answer") == "service.sock\n1.5\n"
        assert sorted(str(p.relative_to(svc)) for p in svc.glob("*/service.sock")) == [
            "slot-0/service.sock",
            "slot-1/service.sock",
            "verify/service.sock",
        ]
        pid = int((service_lab / ".arl" / "forward.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            listening = [a for a in f.read().decode().split("\0") if a.startswith("unix:")]
        assert sorted(listening) == sorted(f"unix:{p}" for p in svc.glob("*/service.sock")), listening
    finally:
        proc.kill()
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
        cleanup_containers(service_lab)
        subprocess.run([str(BIN / "arl-step"), "service-down"], cwd=service_lab, capture_output=True)
    # the host's verifications (the baseline's) went through the verifications' socket
    dry = arl("run", "--dry-run", "--data", "data", "--agent", "offline", cwd=service_lab).stdout
    assert f"src={(svc / 'verify').resolve()},dst=/workspace/service" in dry, dry[-3000:] + out[-2000:]
    assert f"src={(svc / 'slot-0').resolve()},dst=/workspace/service" in dry, dry[-3000:]
