"""`arl-step service-up` / `service-down`: the lab's host service, when it has one (else no-ops)."""

from __future__ import annotations

import argparse

from arl.broker import process as brokerproc
from arl.broker import relay
from arl.config.context import open_lab
from arl.config.engine import engine_kind
from arl.loop.run import OK, open_run
from arl.runstate import state
from arl.sandbox import service


def service_up(lab: str | None) -> int:
    cfg, st = open_run(lab)
    agent = st["settings"]["agent"]
    brokered = brokerproc.mode(cfg, agent) == "broker" and agent in brokerproc.UPSTREAMS
    relayed = engine_kind(cfg.engine, st["settings"]) == "slurm" and cfg.engine.broker == "submit-host"
    in_jobs = engine_kind(cfg.engine, st["settings"]) == "slurm" and not relayed
    brokerproc.job_command_file(cfg).unlink(missing_ok=True)
    if brokered and (in_jobs or not brokerproc.running(cfg, relayed)):
        from arl.agents.launch import broker_auth

        auth, creds = broker_auth(cfg, st["settings"])
        if in_jobs:  # where the container runs: its slot's job starts it, as the user's own process
            brokerproc.write_job_command(cfg, agent, creds)
            print(f"API broker: one in each slot's SLURM job, beside its container; it holds {auth}")
        else:
            pid = brokerproc.start(cfg, agent, creds, relayed=relayed)
            print(f"API broker started (pid {pid}): the agent reaches only its API, the broker holds {auth}")
            if relayed:
                print(f"API broker on this host: each slot's SLURM job relays to it at {relay.reach(cfg)}")
    if cfg.host_service is None:
        return OK
    if service.running_pid(cfg) is None:
        pid = service.up(cfg)
        print(f"host service started (pid {pid}, port {cfg.host_service.port}), forwarded to the sandbox")
    st["service_pid"] = service.running_pid(cfg)
    state.save(cfg, st)
    return OK


def service_down(lab: str | None) -> int:
    cfg = open_lab(lab)
    service.stop(cfg)
    brokerproc.stop(cfg)
    return OK


def from_args(args: argparse.Namespace) -> int:
    return service_up(args.lab) if args.step == "service-up" else service_down(args.lab)
