"""What the agent's container can and cannot do, seen from inside, with arl run by a non-root host user."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, run
from .loophelpers import containers_of, rows, wait_for

UID = GID = 4242
# The example lab with the probe agent, in a repository owned by an unprivileged user, outside root's private tmp.
PROBE = ["python3", "-u", "/workspace/lab/probe_agent.py"]
SETTINGS = {"agent": {"command": PROBE}, "sandbox": {"env": ["ARL_TEST_PASSED"]}}
pytestmark = [pytest.mark.docker, pytest.mark.lab(owner=UID, agents=("probe_agent.py",), settings=SETTINGS)]


def test_sandbox_limits_seen_from_inside(lab: Path, tmp_path: Path) -> None:
    docker_gid = os.stat("/var/run/docker.sock").st_gid
    home = lab.parent / "home"  # made by make_lab, the user's
    env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "ARL_BASE_FROM": "debootstrap",
        "ARL_TEST_PASSED": "yes", "ARL_TEST_SECRET": "must-not-leak", "ANTHROPIC_API_KEY": "sk-not-for-command",
    }  # fmt: skip
    cmd = ["setpriv", f"--reuid={UID}", f"--regid={GID}", f"--groups={docker_gid}", str(BIN / "arl"), "run",
           "--data", "data", "--agent", "command", "--max-iterations", "1"]  # fmt: skip
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=lab, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe_file = lab / ".arl" / "workspaces" / "0" / "probe.json"  # the agent writes only its workspace
        wait_for(probe_file.exists, 240, "the probe's report")
        st = probe_file.stat()
        report = json.loads(wait_for(lambda: probe_file.read_text() or None, 10, "the report's content"))
        (lab / ".arl" / "workspaces" / "0" / "go").write_text("")
        assert proc.wait(180) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    # Files the agent writes in the pipeline belong to the host user.
    assert (st.st_uid, st.st_gid) == (UID, GID)
    assert (report["uid"], report["gid"]) == (UID, GID)
    for key in ("write_data", "write_lab_file", "write_lab_backend", "create_in_lab", "write_results", "write_root_fs"):
        assert report[key] != "allowed", (key, report)
    assert report["write_tmp"] == "allowed"
    assert report["git_dirs"] == [] and not report["docker_socket"]
    assert sorted(report["workspace"]) == ["control", "data", "lab", "notes.md", "pipeline", "results.tsv"]
    assert set(report["lab_files"]) == {"AGENT.md", "backend.py", "lab.toml", "probe_agent.py"}
    # The env allow-list: what [sandbox] env names goes in, nothing else of the host's.
    assert "ARL_TEST_PASSED" in report["env"]
    assert "ARL_TEST_SECRET" not in report["env"] and "ANTHROPIC_API_KEY" not in report["env"]
    assert not containers_of(lab)
    # The probe's attempt is saved under its ref, and the pipeline is clean again.
    rs = rows(lab)
    assert [r["outcome"] for r in rs] == ["baseline", "discard"]
    # The repository belongs to uid 4242; this test process is root, so git wants it declared safe.
    saved = run(
        [
            "git",
            "-c",
            "safe.directory=*",
            "-C",
            str(lab),
            "show",
            "refs/arl/curve-fit/experiments/1:pipeline/probe.json",
        ]
    ).stdout
    assert json.loads(saved)["uid"] == UID
    assert not probe_file.exists()
