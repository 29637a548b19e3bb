"""The API broker's side of the credential (arl/broker.py): which one the host holds, the headers that carry it,
and refreshing an OAuth token on the host, in place, when it is about to expire. Also the upstream connection."""

from __future__ import annotations

import functools
import http.client
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 30.0
OAUTH_BETA, OAUTH_CLIENT_ID = "oauth-2025-04-20", "9d1c250a-e61b-44d9-88ed-5944d1962f5e"  # Claude Code's client
OAUTH_TOKEN_URL, REFRESH_MARGIN_MS = "https://console.anthropic.com/v1/oauth/token", 5 * 60 * 1000


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:  # loading the CA bundle (SSL_CERT_FILE is honoured) once, not per request
    return ssl.create_default_context()


def open_connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """An unopened connection to URL's host, and URL's path (a prefix for the forwarded path)."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https"):
        raise ValueError(f"unsupported upstream URL {url!r}")
    host, port, prefix = u.hostname or "", u.port, u.path.rstrip("/")
    if u.scheme == "https":  # keywords: 3.10's HTTPSConnection still takes key_file third
        return http.client.HTTPSConnection(host, port, timeout=CONNECT_TIMEOUT, context=_tls()), prefix
    return http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT), prefix


class Credentials:
    """The auth headers the broker adds: from its own environment, or a Claude credentials file it refreshes."""

    def __init__(self, provider: str, env: Mapping[str, str], file: Path | None, token_url: str) -> None:
        self.file, self.token_url, self.oauth = file, token_url, provider == "anthropic"
        self.headers: dict[str, str] = {}
        self._oauth: dict[str, Any] = {}
        self._lock, self._retry_at = threading.Lock(), 0.0
        if provider == "openai" and (key := env.get("OPENAI_API_KEY") or env.get("CODEX_API_KEY")):
            self.headers = {"Authorization": f"Bearer {key}"}
        elif provider == "anthropic" and env.get("ANTHROPIC_API_KEY"):
            self.headers, self.oauth = {"x-api-key": env["ANTHROPIC_API_KEY"]}, False
        elif provider == "anthropic" and env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            self.headers = {"Authorization": f"Bearer {env['CLAUDE_CODE_OAUTH_TOKEN']}"}
        elif provider == "anthropic" and file is not None:
            self._load()
        if not self.headers:
            raise SystemExit(f"arl.broker: no {provider} credential in the environment or a credentials file")

    def _load(self) -> None:
        assert self.file is not None
        self._oauth = dict(json.loads(self.file.read_text())["claudeAiOauth"])
        self.headers = {"Authorization": f"Bearer {self._oauth['accessToken']}"}

    def _expiring(self) -> bool:
        expires = self._oauth.get("expiresAt")
        return isinstance(expires, (int, float)) and expires - time.time() * 1000 < REFRESH_MARGIN_MS

    def current(self) -> dict[str, str]:
        """The headers to add now. A file token near expiry is re-read first (the host's own Claude may have
        refreshed it), else refreshed here; a failed refresh keeps the old token and is retried 30 s later."""
        with self._lock:
            if self.file is not None and self._expiring() and time.monotonic() >= self._retry_at:
                try:
                    self._load()
                    if self._expiring():
                        self._refresh()
                except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException) as e:
                    self._retry_at = time.monotonic() + 30
                    print(f"arl.broker: OAuth refresh failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return dict(self.headers)

    def _refresh(self) -> None:
        assert self.file is not None
        grant = {"grant_type": "refresh_token", "refresh_token": self._oauth["refreshToken"]}
        conn, path = open_connection(self.token_url)
        try:
            body = json.dumps({**grant, "client_id": OAUTH_CLIENT_ID}).encode()
            conn.request("POST", path or "/", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise ValueError(f"the token endpoint answered {resp.status}")  # not the body: it may echo a token
        new = json.loads(answer)
        self._oauth.update(
            accessToken=new["access_token"], refreshToken=new.get("refresh_token") or grant["refresh_token"]
        )
        self._oauth["expiresAt"] = int(time.time() * 1000 + float(new["expires_in"]) * 1000)
        data = json.loads(self.file.read_text())  # every other key as the file has it now
        data["claudeAiOauth"] = {**data.get("claudeAiOauth", {}), **self._oauth}
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            os.fchmod(f.fileno(), 0o600)  # O_CREAT's mode does not apply to a leftover temp file
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.file)  # readers see the old file or the new one, never half of one
        self.headers = {"Authorization": f"Bearer {self._oauth['accessToken']}"}
