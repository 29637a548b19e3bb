"""`python -m arl.agents.brokered ...`: the API broker (arl/broker/broker.py) as a run starts it, with arl's prices,
so that it counts each slot's spend in dollars and refuses calls past the run's `max_cost`."""

from __future__ import annotations

import sys

from arl.agents.pricing import claude_cost, openai_cost
from arl.broker.broker import main

PRICES = {"anthropic": claude_cost, "openai": openai_cost}

if __name__ == "__main__":
    sys.exit(main(prices=PRICES))
