"""An OAuth login (Claude Code's credentials file) with the real Claude Code binary in the sandbox: the host's API
broker holds and refreshes the tokens, the agent never sees either of them and cannot touch the user's file.

The agent (scripted through tests/fake_anthropic.py) dumps its process environment, looks for credential files all
over its filesystem and tries to overwrite the places Claude Code keeps them. Whatever the agent learns travels back
to the API in its next request, so "no token in any request body the API received" is the check that it learned
nothing; the host's file is checked byte for byte."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.fake_anthropic import Turn, bash, text

from .claude_lab import (
    DONE_TURN,
    KEEP_TURN,
    PROBE_TURN,
    RAISE_TURN,
    arl_run,
    claude_image_fixture,  # noqa: F401  (a fixture)
    fake_api,
    u,
)
from .loophelpers import containers_of, rows
from .test_broker import Seen, Upstream

pytestmark = [pytest.mark.docker, pytest.mark.lab(image="claude_image", own_name=True)]

# Where Claude Code keeps a login, in the container: each is overwritten, and every credentials file found is shown.
ATTACK = (
    'for d in "$HOME/.claude" /root/.claude "${CLAUDE_CONFIG_DIR:-/nonexistent}"; do '
    'mkdir -p "$d" 2>/dev/null; echo \'{"destroyed":true}\' > "$d/.credentials.json" 2>/dev/null '
    "&& echo \"overwrote $d\"; done; echo '--- found'; "
    "find / -xdev -name '.credentials.json' -not -path '/proc/*' 2>/dev/null | while read -r f; do "
    'echo "$f"; head -c 300 "$f"; echo; done; echo "--- mounts"; cat /proc/mounts'
)
ATTACK_TURN = Turn([text("Where is the login kept?"), bash(ATTACK, "look around")], u(200, 300, 0, 3000))


class TokenServer:
    """The OAuth token endpoint (Anthropic's console, faked on test_broker's recording upstream): answers a refresh
    grant with new tokens."""

    def __init__(self, access: str, refresh: str) -> None:
        self.access, self.refresh = access, refresh
        self.upstream = Upstream(self._answer)

    def _answer(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        data = json.dumps({"access_token": self.access, "refresh_token": self.refresh, "expires_in": 28800}).encode()
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @property
    def grants(self) -> list[dict[str, Any]]:
        return [json.loads(seen.body) for seen in self.upstream.seen]

    @property
    def url(self) -> str:
        return f"{self.upstream.url}/v1/oauth/token"

    def close(self) -> None:
        self.upstream.close()


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    server = TokenServer(f"new-access-{secrets.token_hex(8)}", f"new-refresh-{secrets.token_hex(8)}")
    yield server
    server.close()


def login(folder: Path, expires_in_ms: int) -> tuple[Path, dict[str, Any]]:
    """A Claude Code credentials file as `claude /login` writes it on Linux."""
    folder.mkdir(parents=True)
    oauth = {
        "accessToken": f"old-access-{secrets.token_hex(8)}",
        "refreshToken": f"old-refresh-{secrets.token_hex(8)}",
        "expiresAt": int(time.time() * 1000) + expires_in_ms,
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
    path = folder / ".credentials.json"
    path.write_text(json.dumps({"claudeAiOauth": oauth, "mcpOAuth": {"keep": "me"}}, indent=2))
    path.chmod(0o600)
    return path, oauth


@pytest.mark.parametrize("expired", [True, False], ids=["expired", "valid"])
def test_oauth_login_stays_on_the_host(lab: Path, tmp_path: Path, tokens: TokenServer, expired: bool) -> None:
    creds, old = login(tmp_path / "claude-home", 60_000 if expired else 8 * 3_600_000)
    before = creds.read_bytes()
    script = [PROBE_TURN, ATTACK_TURN, RAISE_TURN, KEEP_TURN, DONE_TURN]
    with fake_api(script) as api:
        env = {
            "ARL_BASE_FROM": "debootstrap",
            "ANTHROPIC_BASE_URL": api.url_for("127.0.0.1"),
            "ANTHROPIC_API_KEY": "",  # the login is the only credential the host has
            "CLAUDE_CODE_OAUTH_TOKEN": "",
            "CLAUDE_CONFIG_DIR": str(creds.parent),
            "ARL_OAUTH_TOKEN_URL": tokens.url,
        }
        proc = arl_run(lab, env, "--max-iterations", "1", "--", "--max-turns", "40")
        main = api.main_requests()
        everything = list(api.requests)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"the broker holds credentials file {creds}" in proc.stdout, proc.stdout
    assert [r["outcome"] for r in rows(lab)] == ["baseline", "keep"], proc.stdout

    # The API saw the host's token on every call (refreshed first when it was about to expire).
    token = tokens.access if expired else old["accessToken"]
    assert main and all(r.headers.get("authorization") == f"Bearer {token}" for r in everything)
    assert all("oauth-2025-04-20" in r.headers.get("anthropic-beta", "") for r in everything)
    if expired:
        assert [g["grant_type"] for g in tokens.grants] == ["refresh_token"]
        assert tokens.grants[0]["refresh_token"] == old["refreshToken"]
        saved = json.loads(creds.read_text())
        assert saved["claudeAiOauth"]["accessToken"] == tokens.access
        assert saved["claudeAiOauth"]["refreshToken"] == tokens.refresh
        assert saved["claudeAiOauth"]["subscriptionType"] == "max" and saved["mcpOAuth"] == {"keep": "me"}
        assert (creds.stat().st_mode & 0o777) == 0o600
    else:
        assert tokens.grants == [] and creds.read_bytes() == before  # byte-identical after the agent's attack

    # Nothing the agent saw (its environment, every file it found, the mounts) holds a token: what it learned went
    # back to the API in its requests' bodies, and none carries one. Its overwrites hit only its own container.
    sent = "\n".join(json.dumps(r.body) for r in everything)
    for secret in (old["accessToken"], old["refreshToken"], tokens.access, tokens.refresh):
        assert secret not in sent
    found = json.dumps(main[2].body)  # the request after the attack carries its output
    assert "overwrote" in found and "--- found" in found and "claude-home" not in found
    assert not containers_of(lab)
