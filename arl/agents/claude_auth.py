"""Claude Code's credentials for the sandbox.

Credentials (first found wins): ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN, the credentials file, the macOS keychain.
The credentials file is mounted read-write by itself (Claude Code rewrites it in place when it refreshes the token,
and a refresh rotates the refresh token: a copy would log the host's own Claude Code out). It sits inside a config
folder of the lab's .arl/ mounted as CLAUDE_CONFIG_DIR, outside $HOME: docker creates the parents of a mount point
as root, which would leave the tmpfs $HOME unwritable for the sandbox user."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from arl.agents.base import AgentContext, LaunchSpec, Mount
from arl.agents.stream import json_object
from arl.errors import ArlError

CONFIG_DIR = "/tmp/claude-config"  # CLAUDE_CONFIG_DIR in the sandbox (/tmp is a tmpfs there)
KEYCHAIN_ITEM = "Claude Code-credentials"
NO_CREDENTIALS = (
    "no credentials for Claude Code: set ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN (from `claude setup-token`), "
    "or log in with `claude` so that ~/.claude/.credentials.json exists, or on macOS pass --use-oauth-osx"
)


def add_credentials(ctx: AgentContext, spec: LaunchSpec) -> None:
    if ctx.use_oauth_osx and sys.platform != "darwin":
        raise ArlError(
            f"--use-oauth-osx reads the macOS keychain, and this host is {sys.platform}: drop it and set "
            "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN, or log in with `claude` (~/.claude/.credentials.json)"
        )
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        if ctx.host_env.get(var):
            spec.env[var] = ctx.host_env[var]
            spec.secrets.append(var)
            spec.auth = f"{var} (environment)"
            return
    creds = host_credentials(ctx)
    if creds.is_file():
        folder = config_folder(ctx)
        placeholder = folder / ".credentials.json"  # the mount point: ours, or docker would create it as root
        if not placeholder.exists():
            _write_private(placeholder, "")
        spec.mounts += [
            Mount(folder, CONFIG_DIR, read_only=False),
            Mount(creds, f"{CONFIG_DIR}/.credentials.json", read_only=False),
        ]
        spec.env["CLAUDE_CONFIG_DIR"] = CONFIG_DIR
        spec.auth = f"credentials file {creds} (mounted read-write: token refreshes reach it)"
        return
    if ctx.use_oauth_osx:
        folder = config_folder(ctx)
        copy = folder / ".credentials.json"
        _store_keychain_copy(read_keychain(), copy)
        spec.mounts.append(Mount(folder, CONFIG_DIR, read_only=False))
        spec.env["CLAUDE_CONFIG_DIR"] = CONFIG_DIR
        spec.auth = f"macOS keychain item {KEYCHAIN_ITEM!r} (copied to {copy})"
        return
    raise ArlError(NO_CREDENTIALS)


def broker_credentials(ctx: AgentContext) -> tuple[str, Path | None]:
    """Which credential the host's broker uses (first found wins), and the credentials file it reads, if any.
    Nothing is mounted: the container gets a placeholder."""
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        if ctx.host_env.get(var):
            return f"{var} (environment)", None
    creds = host_credentials(ctx)
    if creds.is_file() and not ctx.use_oauth_osx:
        return f"credentials file {creds}", creds
    if ctx.use_oauth_osx:
        if sys.platform != "darwin":
            raise ArlError(f"--use-oauth-osx reads the macOS keychain, and this host is {sys.platform}")
        copy = config_folder(ctx) / ".credentials.json"
        _store_keychain_copy(read_keychain(), copy)
        return f"macOS keychain item {KEYCHAIN_ITEM!r} (copied to {copy})", copy
    raise ArlError(NO_CREDENTIALS)


def host_credentials(ctx: AgentContext) -> Path:
    """Where the host's Claude Code keeps its login: $CLAUDE_CONFIG_DIR or ~/.claude, then .credentials.json."""
    folder = ctx.host_env.get("CLAUDE_CONFIG_DIR")
    return (Path(folder).expanduser() if folder else ctx.home / ".claude") / ".credentials.json"


def config_folder(ctx: AgentContext) -> Path:
    """The sandbox's CLAUDE_CONFIG_DIR on the host: in the lab's .arl/, so it is the user's and survives restarts."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", ctx.lab_name.lower()).strip("-.") or "lab"
    folder = ctx.state_dir / "claude" if ctx.state_dir else ctx.home / ".cache" / "arl" / "claude-config" / slug
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def read_keychain() -> str:
    """The macOS keychain's Claude Code login (JSON with claudeAiOauth), through the `security` tool."""
    cmd = ["security", "find-generic-password", "-s", KEYCHAIN_ITEM, "-w"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ArlError(f"cannot run `{' '.join(cmd)}`: {e}")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ArlError(
            f"the macOS keychain has no item {KEYCHAIN_ITEM!r} (security exited {proc.returncode}): "
            "log in with `claude` on this Mac first"
        )
    return proc.stdout.strip()


def _expiry(text: str) -> float:
    try:
        value = json.loads(text).get("claudeAiOauth", {}).get("expiresAt", 0)
    except (ValueError, AttributeError):
        return 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def _store_keychain_copy(secret: str, copy: Path) -> None:
    if not isinstance(json_object(secret), dict):
        raise ArlError(f"the keychain item {KEYCHAIN_ITEM!r} is not the JSON Claude Code writes; log in with `claude`")
    # the sandbox may have refreshed the copy since: a newer token there must not be replaced by an older one
    if copy.is_file() and _expiry(copy.read_text()) > _expiry(secret):
        return
    _write_private(copy, secret)


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (a credential must never be world-readable, even for a moment)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
