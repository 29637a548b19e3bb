"""Where the sandbox images' parts come from when registries may be unreachable.

The base below arl-agent-base: a local image, a registry pull, or Debian built with debootstrap (for engines that
reach no registry: air-gapped clusters, a CI engine that starts empty; needs root and a Debian mirror,
`ARL_DEBIAN_MIRROR`; cached in the engine as `arl-debian-base:bookworm`, `ARL_DEBIAN_BASE_TAG`). Claude Code: the
native binary inside the claude-agent-sdk wheel from PyPI, when the npm registry does not answer.
Also home of the two docker helpers images.py shares: `inspect` and `stream`."""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.util import sh

DEFAULT_BASE_IMAGE = "python:3.12-slim"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = "python3,git,ca-certificates"
APT_HINT = "install it with `sudo apt-get install debootstrap`"
_WHEEL_PLATFORMS = {"amd64": "manylinux_2_17_x86_64", "arm64": "manylinux_2_17_aarch64"}
_BUNDLED = "claude_agent_sdk/_bundled/claude"


def registry_base() -> str:
    return os.environ.get("ARL_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def debian_tag() -> str:
    return os.environ.get("ARL_DEBIAN_BASE_TAG") or f"arl-debian-base:{SUITE}"


def inspect(ref: str) -> dict[str, Any] | None:
    """`docker image inspect REF` as a dict; None when there is no such image (any other failure is an error)."""
    cmd = sh.docker()["image", "inspect", ref]
    code, out, err = sh.run(cmd, ok=None)
    if code == 0:
        return json.loads(out)[0]
    if "no such image" in err.lower():
        return None
    raise ArlError(f"`{sh.line(cmd)}` failed (exit {code}): {err.strip() or out.strip()}")


def stream(cmd: Any, *, shown: str | None = None, env: dict[str, str] | None = None, hint: str = "") -> None:
    """Run a long command (build, pull, debootstrap) with its output passed to stderr as it comes, so the user sees
    progress; on failure, an ArlError with the most telling of its last lines."""
    sh.echo(shown or sh.line(cmd))
    if env:
        cmd = cmd.with_env(**env)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    try:
        proc = cmd.popen(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise ArlError(f"cannot run {shown or sh.line(cmd)}: {e.strerror}")
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip()
            tail.append(text)
            if os.environ.get("ARL_QUIET") != "1":
                print(f"  {text}", file=sys.stderr, flush=True)
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not leave a build or a debootstrap running behind us
            proc.terminate()
            proc.wait()
    if code != 0:
        lines = [t.strip() for t in tail if t.strip()]
        telling = [t for t in lines if t.startswith(("E:", "ERROR", "error")) or "error" in t.lower()]
        detail = (telling or lines or [""])[-1]
        full = shown or sh.line(cmd)
        short = full if len(full) <= 100 else full.split(" -")[0] + " ..."
        raise ArlError(f"`{short}` failed (exit {code}){': ' + detail if detail else ''}{hint}")


def debootstrap_problem() -> str | None:
    """Why debootstrap cannot run here, or None."""
    if shutil.which("debootstrap") is None:
        return f"debootstrap is not installed; {APT_HINT}"
    if os.geteuid() != 0:
        return (
            "debootstrap needs root (it chroots and creates device files): run `sudo arl image --base-from "
            "debootstrap` once; the image is then cached in the engine"
        )
    return None


def ensure_debian_base(force: bool = False, tag: str | None = None, mirror: str | None = None) -> str:
    """A minimal Debian (python3, git, ca-certificates) imported into the engine; built only when missing or forced."""
    tag = tag or debian_tag()
    if not force and inspect(tag) is not None:
        return tag
    problem = debootstrap_problem()
    if problem:
        raise ArlError(problem)
    mirror = mirror or os.environ.get("ARL_DEBIAN_MIRROR") or DEFAULT_MIRROR
    sh.say(f"arl: building {tag} with debootstrap from {mirror} (about a minute)")
    tmp = Path(tempfile.mkdtemp(prefix="arl-debootstrap-"))
    root = tmp / "root"
    try:
        boot = sh.tool("debootstrap")["--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), mirror]
        stream(boot, hint=f" (check the mirror {mirror}, or set ARL_DEBIAN_MIRROR)")
        # The downloaded .debs and apt lists are a third of the tree and useless in a sandbox; images built on it
        # run `apt-get update` first, as on any Debian image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file() and p.name != "lock":
                    p.unlink()
        tar = sh.tool("tar")["-C", str(root), "-c", "."]
        imp = sh.docker()["import", "-c", 'CMD ["/bin/bash"]', "-", tag]
        sh.echo(f"{sh.line(tar)} | {sh.line(imp)}")
        code, _, err = sh.run(tar | imp, ok=None, quiet=True)
        if code != 0:
            raise ArlError(f"`docker import` of the debootstrap tree failed (exit {code}): {err.strip()}")
    finally:
        _remove_tree(tmp)
    return tag


def _remove_tree(tmp: Path) -> None:
    """Delete the chroot, but never through a mount left behind by an interrupted debootstrap (proc, sys...)."""
    prefix = str(tmp) + "/"

    def mounted() -> list[str]:
        try:
            lines = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return []
        points = (ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1)
        return sorted((p for p in points if p.startswith(prefix)), reverse=True)

    for point in mounted():
        sh.run(sh.tool("umount")["-l", point], ok=None)
    if mounted():
        sh.say(f"arl: warning: {tmp} still has mounts; not deleting it")
        return
    shutil.rmtree(tmp, ignore_errors=True)


def resolve_base(base_from: str | None, previous: str | None, force: bool) -> str:
    """The image to build arl-agent-base FROM.

    debootstrap: the Debian base (built when missing or forced). registry: BASE_IMAGE, pulled when missing (or
    forced). auto (None): whatever is already in the engine first (the previous base, BASE_IMAGE, the Debian base),
    then a pull, then debootstrap, so an offline engine never waits on a registry it cannot reach."""
    if base_from == "debootstrap":
        return ensure_debian_base(force)
    ref = registry_base()
    if base_from is None:
        for candidate in (previous, ref, debian_tag()):
            if candidate and inspect(candidate) is not None:
                return candidate
    elif not force and inspect(ref) is not None:
        return ref
    try:
        stream(sh.docker()["pull", ref])
        return ref
    except ArlError as e:
        failure = str(e)
    if base_from == "registry":
        if force and inspect(ref) is not None:
            sh.say(f"arl: warning: could not pull {ref}; using the copy already in the engine")
            return ref
        raise ArlError(f"{failure}; with no registry, use `arl image --base-from debootstrap`")
    problem = debootstrap_problem()
    if problem:
        raise ArlError(f"{failure}; and the debootstrap fallback is not possible: {problem}")
    sh.say(f"arl: cannot pull {ref}; building the base from Debian packages with debootstrap instead")
    return ensure_debian_base(False)


def npm_reachable(timeout: float = 5.0) -> bool:
    """Does the npm registry answer? (npm reads npm_config_registry in any letter case.)"""
    env = {k.lower(): v for k, v in os.environ.items()}
    url = (env.get("npm_config_registry") or "https://registry.npmjs.org").rstrip("/") + "/-/ping"
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def claude_binary(cache: Path, arch: str, force: bool = False) -> Path:
    """The folder in arl's cache holding `claude`, the native Claude Code binary of the claude-agent-sdk wheel."""
    root = cache / "claude"
    cached = sorted(root.glob(f"*-{arch}/claude"), key=lambda p: p.stat().st_mtime)
    if cached and not force:
        return cached[-1].parent
    platform = _WHEEL_PLATFORMS.get(arch)
    if platform is None:
        raise ArlError(f"the claude-agent-sdk wheel has no Linux build for {arch} (only {', '.join(_WHEEL_PLATFORMS)})")
    if importlib.util.find_spec("pip") is None:
        raise ArlError(f"fetching Claude Code needs pip in arl's Python ({sys.executable}): python -m ensurepip")
    root.mkdir(parents=True, exist_ok=True)
    version = os.environ.get("ARL_CLAUDE_SDK_VERSION")
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=root) as tmp:
        pip = sh.tool(sys.executable)["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        pip = pip["--platform", platform, "-d", tmp, "claude-agent-sdk" + (f"=={version}" if version else "")]
        stream(pip, hint=" (the PyPI wheel of claude-agent-sdk carries Claude Code)")
        wheel = next(Path(tmp).glob("claude_agent_sdk-*.whl"))
        folder = Path(tmp) / f"{wheel.name.split('-')[1]}-{arch}"
        folder.mkdir()
        with zipfile.ZipFile(wheel) as z, z.open(_BUNDLED) as src, open(folder / "claude", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(folder / "claude", 0o755)
        final = root / folder.name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(folder, final)
    return final
