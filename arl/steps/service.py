"""`arl-step service-up` / `service-down`: the lab's host service, when it has one (else no-ops)."""

from __future__ import annotations

import argparse

from .. import service, state
from ..lab import open_lab
from .common import OK, open_run


def service_up(lab: str | None) -> int:
    cfg, st = open_run(lab)
    if cfg.host_service is None:
        return OK
    if service.running_pid(cfg) is None:
        pid = service.up(cfg)
        print(f"host service started (pid {pid}, port {cfg.host_service.port}), forwarded to the sandbox")
    st["service_pid"] = service.running_pid(cfg)
    state.save(cfg, st)
    return OK


def service_down(lab: str | None) -> int:
    service.stop(open_lab(lab))
    return OK


def from_args(args: argparse.Namespace) -> int:
    return service_up(args.lab) if args.step == "service-up" else service_down(args.lab)
