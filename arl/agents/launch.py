"""From a run's settings to an adapter's LaunchSpec (shared by preflight, launch and `arl run --dry-run`)."""

from __future__ import annotations

import os
from pathlib import Path

from arl.agents.base import AgentContext, LaunchSpec, get_adapter
from arl.broker.process import mode
from arl.config.config import LabConfig
from arl.runstate.runstate import RunState, Settings


def context(
    cfg: LabConfig, settings: Settings, seed: int | None = None, st: RunState | None = None, slot: int = 0
) -> AgentContext:
    from arl.agents.prompt import budget_line, build_prompt

    agent_md = cfg.agent_instructions.read_text() if cfg.agent_instructions.is_file() else ""
    return AgentContext(
        lab_name=cfg.name,
        model=settings.get("model") or "",
        extra_args=list(settings.get("agent_args") or []),
        prompt=build_prompt(
            agent_md,
            settings.get("prompt") or "",
            cfg.name,
            cfg.direction,
            cfg.max_files,
            cfg.max_workspace_mb,
            cfg.max_depth,
            cfg.run.iteration_timeout if settings.get("iteration_timeout") is None else settings["iteration_timeout"],
            budget_line(settings, (st or {}).get("started"), (st or {}).get("cost", 0.0)),
        ),
        host_env=dict(os.environ),
        home=Path.home(),
        sandbox_uid=os.getuid(),
        command=list(cfg.agent_command),
        use_oauth_osx=bool(settings.get("use_oauth_osx")),
        seed=seed,
        state_dir=cfg.state_dir,
        network=mode(cfg, settings["agent"]),
        allow_web=cfg.allow_web,
        slot=slot,
    )


def check_agent(cfg: LabConfig, settings: Settings) -> LaunchSpec:
    """Resolve the adapter and its credentials; a missing credential is an ArlError raised here."""
    return get_adapter(settings["agent"]).launch(context(cfg, settings))


def broker_auth(cfg: LabConfig, settings: Settings) -> tuple[str, Path | None]:
    """The credential the host's API broker holds for this agent (for the message), and the file it reads, if any."""
    ctx = context(cfg, settings)
    if settings["agent"] == "codex":
        from arl.agents.codex import host_key

        return f"{host_key(ctx)} (environment)", None
    from arl.agents.claude_auth import broker_credentials

    return broker_credentials(ctx)
