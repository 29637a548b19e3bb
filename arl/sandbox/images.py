"""The sandbox images: arl-agent-base (python, git, arl from the build context), agent layers, a lab's own image.

Each image is labelled with a hash of what it was built from and the id of the image below it, so an `ensure_*`
call that finds its image current costs one `docker image inspect` and builds nothing. Labels are inherited by
child images, hence one label key per level (base: arl.context-hash, agent: arl.agent-*, lab: arl.lab-*)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arl.config.config import LabConfig
from arl.errors import ArlError
from arl.sandbox import images_debootstrap as deb
from arl.sandbox.images_context import dockerignore, tree_digest
from arl.util import sh
from arl.util.fsutil import resource_dir

BASE_TAG = "arl-agent-base:latest"
NPM_PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}
BASE_KINDS = ("offline", "command")  # agents that need nothing beyond arl-agent-base
# What a container needs of the host's site-packages; all pure Python (tomli only matters where python < 3.11).
RUNTIME_MODULES = ("plumbum", "tabulate", "tomli")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache")
_LAUNCHER = (
    '#!/usr/bin/env python3\nimport sys\nsys.path.insert(0, "/opt/arl/lib")\nfrom {mod} import main\nsys.exit(main())\n'
)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arl"


def _labels(info: dict[str, Any] | None) -> dict[str, str]:
    return ((info or {}).get("Config") or {}).get("Labels") or {}


@functools.cache
def _builder_env() -> dict[str, str]:
    # Without the buildx plugin (as on this engine's CLI) `docker build` with DOCKER_BUILDKIT=1 in the environment
    # fails outright, and without it falls back to the legacy builder anyway: say so explicitly, and in the line.
    code, _, _ = sh.run(sh.docker()["buildx", "version"], ok=None)
    return {} if code == 0 else {"DOCKER_BUILDKIT": "0"}


def _build(
    context: Path,
    tag: str,
    args: dict[str, str],
    labels: dict[str, str],
    dockerfile: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """`docker build`; returns the new image's inspect. Forced: no cached step either (say, one built offline)."""
    before = deb.inspect(tag)
    cmd = sh.docker()[("build", "--force-rm", "--no-cache") if force else ("build", "--force-rm")]["-t", tag]
    if dockerfile is not None:
        cmd = cmd["-f", str(dockerfile)]
    for k, v in args.items():
        cmd = cmd["--build-arg", f"{k}={v}"]
    for k, v in labels.items():
        cmd = cmd["--label", f"{k}={v}"]
    cmd = cmd[str(context)]
    env = _builder_env()
    shown = "".join(f"{k}={v} " for k, v in env.items()) + sh.line(cmd)
    deb.stream(cmd, shown=shown, env=env)
    info = deb.inspect(tag)
    if info is None:
        raise ArlError(f"{tag} is not in the engine right after building it")
    if before is not None and before["Id"] != info["Id"]:
        _superseded.append(before["Id"])
    return info


# The images this call replaced under their tag. Only these are ever removed (nothing else of the engine is
# pruned): once the call's builds are done, each that is left untagged and unused; one a container or a child image
# still uses stays (`docker image prune --filter label=arl.context-hash` clears those by hand).
_superseded: list[str] = []


def _drop_superseded() -> None:
    while _superseded:
        old = _superseded.pop()  # the newest first: a child before the image it was built on
        info = deb.inspect(old)
        if info is not None and not info.get("RepoTags") and "arl.context-hash" in _labels(info):
            sh.run(sh.docker()["image", "rm", old], ok=None)


# ---------------------------------------------------------------------------------------------------- the base


def _write_base_context(dest: Path) -> None:
    """arl, its resources and its runtime dependencies, copied from this very installation, as a root filesystem."""
    lib, bin_dir, pkg = dest / "rootfs/opt/arl/lib", dest / "rootfs/usr/local/bin", Path(__file__).resolve().parents[1]
    shutil.copytree(pkg, lib / "arl", ignore=_SKIP)
    for name in ("templates", "hooks"):  # beside the package in a checkout, inside it in a wheel
        if not (lib / "arl" / name).is_dir():
            shutil.copytree(resource_dir(name), lib / "arl" / name, ignore=_SKIP)
    alias = importlib.util.find_spec("autoresearch_lab")  # autoresearch-lab backends import it in the sandbox too
    if alias is not None and alias.origin:
        shutil.copytree(Path(alias.origin).parent, lib / "autoresearch_lab", ignore=_SKIP)
    for mod in RUNTIME_MODULES:
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin:
            if mod == "tomli":
                continue
            raise ArlError(f"{mod} is not installed beside arl ({sys.executable}); reinstall arl")
        if spec.submodule_search_locations:
            shutil.copytree(Path(spec.origin).parent, lib / mod, ignore=_SKIP)
        else:
            shutil.copy2(spec.origin, lib / Path(spec.origin).name)
    bin_dir.mkdir(parents=True)
    for name, mod in (("arl", "arl.cli"), ("arl-step", "arl.step_cli")):
        (bin_dir / name).write_text(_LAUNCHER.format(mod=mod))
    shutil.copy2(resource_dir("templates") / "image" / "Dockerfile", dest / "Dockerfile")
    # The container runs as any uid: everything must be world-readable whatever the host's umask was.
    for dirpath, _dirs, files in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(Path(dirpath) / f, 0o755 if Path(dirpath) == bin_dir else 0o644)


def _base_context() -> tuple[Path, str]:
    """The build context in the cache, named by its hash, so the printed `docker build` line can be replayed."""
    root = cache_dir() / "build"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=root))
    _write_base_context(tmp)
    digest = tree_digest(tmp)
    final = root / f"base-{digest}"
    try:
        os.rename(tmp, final)
    except OSError:  # already there (the same arl, maybe a concurrent call): identical by its name
        shutil.rmtree(tmp, ignore_errors=True)
    os.utime(final)  # marks it in use for the pruning below
    return final, digest


def _ensure_base(base_from: str | None, force: bool) -> dict[str, Any]:
    if base_from not in (None, "registry", "debootstrap"):
        raise ArlError(f"--base-from must be registry or debootstrap, not {base_from!r}")
    context, digest = _base_context()
    info = deb.inspect(BASE_TAG)
    labels = _labels(info)
    wanted = {"registry": deb.registry_base(), "debootstrap": deb.debian_tag()}.get(base_from or "")
    if info and not force and labels.get("arl.context-hash") == digest and wanted in (None, labels.get("arl.base")):
        return info
    base = deb.resolve_base(base_from, labels.get("arl.base"), force)
    new = _build(context, BASE_TAG, {"BASE_IMAGE": base, "ARL_CONTEXT_HASH": digest}, {}, None, force)
    for old in context.parent.glob("base-*"):  # earlier versions of arl's context, unless a build may still use it
        try:
            if old != context and time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # pruned by a concurrent call
            pass
    return new


def ensure_base(base_from: str | None = None, force: bool = False) -> str:
    """arl-agent-base:latest, built when missing, when arl's code changed, or when another base is asked for."""
    try:
        _ensure_base(base_from, force)
    finally:
        _drop_superseded()
    return BASE_TAG


# ---------------------------------------------------------------------------------------------- agent layers


def _build_agent_layer(kind: str, parent: str, parent_info: dict[str, Any], tag: str, force: bool) -> dict[str, Any]:
    """`tag` = parent + the agent's program: from npm where its registry answers, else (claude) the wheel."""
    images = resource_dir("templates") / "image"
    if deb.npm_reachable():
        dockerfile, context, source = images / "Dockerfile.npm", images, "npm"
        args = {"ARL_BASE": parent, "NPM_PACKAGE": NPM_PACKAGES[kind]}
    elif kind == "claude":
        sh.say("arl: the npm registry is unreachable; taking Claude Code from the claude-agent-sdk wheel (PyPI)")
        context = deb.claude_binary(cache_dir(), str(parent_info.get("Architecture") or "amd64"), force)
        dockerfile, source, args = context / "Dockerfile", f"wheel:{context.name}", {"ARL_BASE": parent}
        shutil.copy2(images / "Dockerfile.claude", dockerfile)
    else:
        raise ArlError(
            f"the {kind} agent image needs Node and the npm package {NPM_PACKAGES[kind]}, and the npm registry is "
            "unreachable from here; build it where npm answers (then `docker save` / `docker load`), or use "
            "another agent (--agent claude|offline|command)"
        )
    labels = {"arl.agent-parent": parent_info["Id"], "arl.agent-source": source, "arl.agent-hash": _agent_hash(kind)}
    return _build(context, tag, args, labels, dockerfile, force)


def _agent_hash(kind: str) -> str:
    images = resource_dir("templates") / "image"
    h = hashlib.sha256(kind.encode())
    for f in sorted(images.glob("Dockerfile.*")):
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _ensure_agent(kind: str, base_from: str | None, force: set[str]) -> tuple[str, dict[str, Any]]:
    """`force` names the layers to rebuild without cache: "base", "agent"."""
    if kind not in NPM_PACKAGES and kind not in BASE_KINDS and "." not in kind:
        raise ArlError(f"unknown agent kind {kind!r} (known: claude, codex, command, offline, or a dotted class path)")
    base = _ensure_base(base_from, "base" in force)
    if kind not in NPM_PACKAGES:  # offline, command and adapter classes run on the base as it is
        return BASE_TAG, base
    tag = f"arl-agent-{kind}:latest"
    info = deb.inspect(tag)
    wanted = {"arl.agent-parent": base["Id"], "arl.agent-hash": _agent_hash(kind)}
    if info and "agent" not in force and all(_labels(info).get(k) == v for k, v in wanted.items()):
        return tag, info
    return tag, _build_agent_layer(kind, BASE_TAG, base, tag, "agent" in force)


def forced(kind: str, lab_layer: bool, force: bool, force_all: bool) -> set[str]:
    """The layers to rebuild: --force-all every one; --force only the top one, the image the lab (or the agent)
    runs in: the lab's own layer, else the agent's, else the base."""
    if force_all:
        return {"base", "agent", "lab"}
    if not force:
        return set()
    return {"lab" if lab_layer else "agent" if kind in NPM_PACKAGES else "base"}


def ensure_agent_image(kind: str, base_from: str | None = None, force: bool = False, force_all: bool = False) -> str:
    """The image an agent of this kind runs in: the base, or arl-agent-claude / arl-agent-codex on top of it."""
    try:
        return _ensure_agent(kind, base_from, forced(kind, False, force, force_all))[0]
    finally:
        _drop_superseded()


# ------------------------------------------------------------------------------------------------- lab images


def lab_image_tag(name: str) -> str:
    """A valid Docker repository name for any lab name."""
    clean = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100].strip("-")
    return f"arl-lab-{clean or hashlib.sha256(name.encode()).hexdigest()[:12]}:latest"


def _layers(info: dict[str, Any]) -> list[str]:
    return list((info.get("RootFS") or {}).get("Layers") or [])


def _built_on(child: dict[str, Any], parent: dict[str, Any]) -> bool:
    below = _layers(parent)
    return _layers(child)[: len(below)] == below


def ensure_lab_image(
    cfg: LabConfig, kind: str, base_from: str | None = None, force: bool = False, force_all: bool = False
) -> str:
    """The lab's image from `[sandbox] dockerfile` (built with ARL_BASE = the agent image), or the agent image."""
    try:
        return _ensure_lab(cfg, kind, base_from, forced(kind, cfg.dockerfile is not None, force, force_all))
    finally:
        _drop_superseded()


def _ensure_lab(cfg: LabConfig, kind: str, base_from: str | None, force: set[str]) -> str:
    agent, agent_info = _ensure_agent(kind, base_from, force)
    if cfg.dockerfile is None:
        return agent
    where = f"{cfg.path}: [sandbox]"
    if not cfg.dockerfile.is_file():
        raise ArlError(f"{where} dockerfile: no file {cfg.dockerfile}")
    if not cfg.build_context.is_dir():
        raise ArlError(f"{where} build_context: no folder {cfg.build_context}")
    tag = lab_image_tag(cfg.name)
    digest = tree_digest(cfg.build_context, dockerignore(cfg.build_context), cfg.dockerfile.read_bytes())
    info = deb.inspect(tag)
    wanted = {"arl.lab-hash": digest, "arl.lab-parent": agent_info["Id"]}
    if info and "lab" not in force and all(_labels(info).get(k) == v for k, v in wanted.items()):
        return tag
    new = _build(cfg.build_context, tag, {"ARL_BASE": agent}, wanted, cfg.dockerfile, "lab" in force)
    if _built_on(new, agent_info):
        return tag
    base = deb.inspect(BASE_TAG)
    if base is None or not _built_on(new, base):
        sh.run(sh.docker()["image", "rm", tag], ok=None)  # else the next call would find it "current"
        raise ArlError(
            f"{cfg.dockerfile} must build FROM the arl image: start it with `ARG ARL_BASE` and `FROM ${{ARL_BASE}}`"
        )
    # Built FROM arl-agent-base while the agent needs its own layer: put that layer on top of the lab's image.
    _build_agent_layer(kind, tag, new, tag, "lab" in force)
    return tag
