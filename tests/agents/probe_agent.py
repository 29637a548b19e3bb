"""A command agent that probes its sandbox and reports what it could do (run inside the container by the tests)."""

import json
import os
import pathlib
import socket
import subprocess
import time


def attempt(fn):
    try:
        fn()
        return "allowed"
    except Exception as e:
        return type(e).__name__


def write(path, mode="w"):
    def go():
        with open(path, mode) as f:
            f.write("x")

    return go


def connect(host, port):
    def go():
        with socket.create_connection((host, port), timeout=2):
            pass

    return go


report = {
    "write_data": attempt(write("/workspace/data/evil.csv")),
    "write_lab_file": attempt(write("/workspace/lab/lab.toml", "a")),
    "write_lab_backend": attempt(write("/workspace/lab/backend.py", "a")),
    "create_in_lab": attempt(write("/workspace/lab/new.py")),
    "write_results": attempt(write("/workspace/results.tsv", "a")),
    "write_root_fs": attempt(write("/usr/evil")),
    "write_tmp": attempt(write("/tmp/ok")),
    "docker_socket": os.path.exists("/var/run/docker.sock"),
    "git_dirs": [str(p) for p in pathlib.Path("/workspace").rglob(".git")],
    "uid": os.getuid(),
    "gid": os.getgid(),
    "env": sorted(os.environ),
    "lab_files": sorted(os.listdir("/workspace/lab")),
    "workspace": sorted(os.listdir("/workspace")),
}
pathlib.Path("/workspace/pipeline/probe.json").write_text(json.dumps(report))
# Hand over to the test (it inspects the file on the host), then finish the experiment through the protocol.
go = pathlib.Path("/workspace/pipeline/go")  # the control folder keeps only protocol names
while not go.exists():
    time.sleep(0.05)
subprocess.run(["arl", "eval", "--json"], check=False)
subprocess.run(["arl", "verdict", "discard", "--notes", "probe"], check=False)
time.sleep(3600)
