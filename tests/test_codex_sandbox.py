"""Codex through arl's API broker, end to end on the real engine: `--network none`, a placeholder key, codex's base
URL a port on the container's own loopback forwarded to the broker's socket, the host's key added by the broker.

The codex binary is the one fake here (tests/agents/fake_codex.py: the npm package cannot be installed on this
machine); it speaks the Responses API as codex does, against tests/fake_openai.py on the host's loopback, and prints
codex's event stream. Its turn never completes (the host removes the container after the verdict), so codex's own
usage report never comes: arl's cost must come from the broker's count."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.agents.pricing import openai_cost
from arl.broker.usage import usage_cost

from .claude_lab import RAISE, REACH, host_listener, reach_checked
from .conftest import ROOT, run
from .fake_openai import FakeOpenAI, Reply
from .loophelpers import containers_of, rows, run_arl

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="codex_image", own_name=True)]

MODEL = "gpt-5-codex"
PROBE = (
    "$ tr '\\0' '\\n' < /proc/$PPID/environ; echo '--- reach'; python3 -c \"import urllib.request as u, os, socket\n"
    "try:\n u.urlopen(os.environ.get('OPENAI_BASE_URL', 'http://127.0.0.1:18951/v1') + '/models', timeout=5)\n"
    "except Exception as e:\n print('broker GET /v1/models', getattr(e, 'code', type(e).__name__))\n" + REACH + '"'
)
SCRIPT = [
    Reply(PROBE, 3000, 0, 400),
    Reply("$ " + RAISE, 3500, 3000, 600),
    Reply("$ arl verdict keep --notes 'OFFSET +0.35 via codex'", 4200, 3500, 300),
    Reply("Done.", 4300, 4200, 50),
]


@pytest.fixture(scope="module")
def codex_image(docker_engine: None) -> Iterator[str]:
    """arl-agent-codex as arl would accept it (its labels), with the fake codex as /usr/local/bin/codex."""
    from arl.sandbox import images

    base = images.ensure_base("debootstrap")
    base_id = run(["docker", "image", "inspect", base, "--format", "{{.Id}}"]).stdout.strip()
    tag = "arl-agent-codex:latest"
    dockerfile = (
        f"FROM {base}\nCOPY fake_codex.py /usr/local/bin/codex\nRUN chmod 755 /usr/local/bin/codex\n"
        f'LABEL arl.agent-parent="{base_id}" arl.agent-hash="{images._agent_hash("codex")}" '
        'arl.agent-source="fake (tests/agents/fake_codex.py)"\n'
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-f", "-", str(ROOT / "tests" / "agents")],
        input=dockerfile, text=True, check=True, capture_output=True,
    )  # fmt: skip
    yield tag
    run(["docker", "image", "rm", tag], check=False)


def test_codex_reaches_only_its_api_through_the_broker(lab: Path) -> None:
    key = f"sk-proj-{secrets.token_hex(16)}"
    with FakeOpenAI(SCRIPT) as api, host_listener() as seen:
        env = {"CODEX_API_KEY": key, "OPENAI_BASE_URL": api.base_url}
        proc = run_arl(
            lab, "--model", MODEL, "--plateau-threshold", "0", "--max-iterations", "1", agent="codex", env=env
        )
        posts = [r for r in api.requests if r.method == "POST"]
        others = [r for r in api.requests if r.method != "POST"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [r["outcome"] for r in rows(lab)] == ["baseline", "keep"], proc.stdout
    assert "OFFSET +0.35 via codex" in rows(lab)[1]["notes"] and rows(lab)[1]["agent"] == "codex"
    assert "the broker holds CODEX_API_KEY (environment)" in proc.stdout
    launch = [ln for ln in proc.stderr.splitlines() if ln.startswith("+ docker run --sig-proxy=false")]
    assert len(launch) == 1 and " --network none " in launch[0] and key not in proc.stderr + proc.stdout

    # The API saw the host's key on every call, at its own paths; the agent's GET was refused by the broker.
    assert len(posts) == 3 and all(r.path == "/v1/responses" for r in posts)
    assert all(r.headers.get("authorization") == f"Bearer {key}" for r in posts) and others == []
    # What codex itself held (its /proc environ) and could reach, as the API received it back.
    probe = json.dumps(posts[1].body)
    assert "CODEX_API_KEY=arl-broker-placeholder" in probe and "OPENAI_BASE_URL=http://127.0.0.1:18951/v1" in probe
    assert "broker GET /v1/models 403" in probe, probe
    said = [
        m.get("content") for m in posts[1].body.get("input") or [] if isinstance(m, dict) and m.get("role") == "tool"
    ]
    reach_checked("".join(str(c) for c in said), seen)
    assert all(key not in json.dumps(r.body) for r in posts)
    refused = [json.loads(ln) for ln in (lab / ".arl" / "logs" / "broker.jsonl").read_text().splitlines()]
    assert any(r["status"] == 403 and r["path"] == "/v1/models" for r in refused), refused

    # Cost: codex never reported (removed mid-turn); the broker's count of the three answers is arl's figure.
    served = sum(openai_cost(MODEL, r.served.tokens()) for r in posts if r.served is not None)
    assert served > 0
    assert usage_cost(lab / ".arl" / "logs" / "broker-usage.jsonl", openai_cost) == pytest.approx(served, abs=1e-12)
    assert [float(r["cost_usd"] or 0) for r in rows(lab)] == pytest.approx([0.0, served], abs=1e-6)
    assert not containers_of(lab)
