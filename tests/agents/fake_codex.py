#!/usr/bin/env python3
"""A stand-in for OpenAI's `codex exec --json` (the npm package cannot be installed here): it talks to the Responses
API the way codex does (OPENAI_BASE_URL, `Authorization: Bearer $CODEX_API_KEY`, streamed), runs each reply that
starts with "$ " as a shell command in its -C folder and sends the output back, and prints codex's JSON events
(thread.started, turn.started, item.*, and turn.completed with the thread's total usage only when the turn ends)."""

import http.client
import json
import os
import subprocess
import sys
import urllib.parse


def emit(obj):
    print(json.dumps(obj), flush=True)


def main(args):
    if not args or args[0] != "exec":
        print("fake codex: only `codex exec` is implemented", file=sys.stderr)
        return 2
    model = args[args.index("-m") + 1] if "-m" in args else "gpt-5-codex"
    cwd = args[args.index("-C") + 1] if "-C" in args else os.getcwd()
    base = urllib.parse.urlsplit(os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
    headers = {"Authorization": "Bearer " + os.environ.get("CODEX_API_KEY", ""), "Content-Type": "application/json"}
    emit({"type": "thread.started", "thread_id": "0199-fake"})
    emit({"type": "turn.started"})
    total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
    history = [{"role": "user", "content": args[-1][:2000]}]
    for n in range(100):
        conn = http.client.HTTPConnection(base.hostname or "", base.port or 80, timeout=600)
        body = json.dumps({"model": model, "stream": True, "input": history})
        try:
            conn.request("POST", base.path.rstrip("/") + "/responses", body, headers)
            resp = conn.getresponse()
        except OSError as e:
            emit({"type": "turn.failed", "error": {"message": f"stream error: {e}"}})
            return 1
        if resp.status != 200:
            emit({"type": "turn.failed", "error": {"message": f"unexpected status {resp.status}"}})
            return 1
        text = ""
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            ev = json.loads(line[5:])
            if ev.get("type") == "response.output_text.delta":
                text += ev["delta"]
            elif ev.get("type") == "response.completed":
                usage = ev["response"]["usage"]
                total["input_tokens"] += usage["input_tokens"]
                total["cached_input_tokens"] += usage["input_tokens_details"]["cached_tokens"]
                total["output_tokens"] += usage["output_tokens"]
        conn.close()
        if not text.startswith("$ "):
            emit({"type": "item.completed", "item": {"id": f"item_{n}", "type": "agent_message", "text": text}})
            break
        command = text[2:]
        item = {"id": f"item_{n}", "type": "command_execution", "command": command, "status": "in_progress"}
        emit({"type": "item.started", "item": item})
        proc = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        status = "completed" if proc.returncode == 0 else "failed"
        done = {**item, "aggregated_output": output, "exit_code": proc.returncode, "status": status}
        emit({"type": "item.completed", "item": done})
        history.append({"role": "tool", "content": output})
    emit({"type": "turn.completed", "usage": total})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
