"""One turn of the loop: `wait`, then `decide` (a verdict) or `restart` (a container gone or silent), then the stop
rule. `arl-step next` and `arl run` both loop on it.

In one process the verdict is decided the moment `wait` sees it, with no interpreter to start in between: that
start-up was most of a `make research` experiment's host time."""

from __future__ import annotations

from arl.loop.decision import decide
from arl.loop.restarting import restart
from arl.loop.run import OK, open_run
from arl.loop.stopping import stop_rule
from arl.loop.waiting import wait
from arl.util import faults


def next_turn(lab: str | None) -> int:
    """0 when the run should stop now (the reason printed), 3 when it goes on: as `should-stop`."""
    got_verdict = wait(lab) == OK
    faults.point("after-wait")
    if got_verdict:
        decide(lab)
        faults.point("after-decide")
    else:
        restart(lab)
        faults.point("after-restart")
    cfg, st = open_run(lab)
    return stop_rule(cfg, st)
