"""Options that several commands share (--data, --local, --json / --format json): each declared once."""

from __future__ import annotations

import argparse
import os


def json_flags(p: argparse.ArgumentParser, default: str) -> None:
    """--json, and --format json as `arl results` takes it: either spelling wherever one is."""
    p.add_argument("--json", action="store_true", help=f"print JSON (default: {default})")
    p.add_argument(
        "--format", choices=["text", "table", "json"], action=_Format, help="json: the same as --json (default: text)"
    )


class _Format(argparse.Action):
    def __call__(self, parser: object, namespace: argparse.Namespace, values: object, opt: object = None) -> None:
        namespace.json = values == "json"


def data_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default=os.environ.get("ARL_DATA"),
        required="ARL_DATA" not in os.environ,
        help="the data folder to evaluate against (default: $ARL_DATA; required without it)",
    )


def local_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--local",
        action="store_true",
        help="run the pipeline in this process's machine even when the "
        "lab holds an agent's kept code (default: then in the sandbox image)",
    )
