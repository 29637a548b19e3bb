"""The `command` adapter: any program of the user's (`[agent] command`), speaking the same verdict protocol.

It gets the protocol prompt as a file (ARL_PROMPT_FILE) rather than on stdin or as an argument, so that a script in
any language can read it when it wants to. Its output is free text: every non-empty line is a text event."""

from __future__ import annotations

from arl.agents.base import AgentContext, Event, LaunchSpec, StreamAccount
from arl.agents.stream import end_without_final
from arl.errors import ArlError

PROMPT_FILE = "/workspace/control/prompt.md"


class CommandAdapter:
    name = "command"

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        if not ctx.command:
            raise ArlError(
                'agent kind "command" needs a program: set [agent] command in lab.toml, '
                'e.g. command = ["python", "my_agent.py"]'
            )
        env = {"ARL_PROMPT_FILE": PROMPT_FILE}
        if ctx.model:
            env["ARL_AGENT_MODEL"] = ctx.model
        # No network: a program that needs one (an LLM API) deserves its own adapter saying so (network="bridge").
        return LaunchSpec(
            argv=[*ctx.command, *ctx.extra_args], env=env, auth="none (your program's own)", network="none"
        )

    def parse_line(self, line: str, acc: StreamAccount) -> list[Event]:
        text = line.rstrip("\r\n")
        if not text.strip():
            return []
        acc.events += 1
        return [Event("text", text)]

    def end_class(self, acc: StreamAccount, exit_code: int | None) -> str:
        # a program with no final line of its own: exit 0 is a clean finish
        return "done" if exit_code == 0 else end_without_final(exit_code)

    def cost(self, acc: StreamAccount) -> float:
        return 0.0  # arl cannot see what a user's program spends
