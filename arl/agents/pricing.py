"""What tokens cost, in USD per million tokens, for the agents that report tokens rather than dollars.

Claude: the table and the formula are Claude Code's own (its baked-in model catalog, read from the 2.1.x binary in
the claude-agent-sdk wheel), so that arl's estimate of a killed run matches what Claude Code would have reported:
per API message, input + output + cache reads + cache writes (the 1-hour part of `usage.cache_creation` at the 1h
rate, the rest at the 5-minute rate) + $0.01 per web search, times 1.1 when `inference_geo` is "us". A model the
table does not know is priced like Claude Code prices one: at the $5/$25 tier. Fast mode is not modelled.

Codex (OpenAI): list prices per model; `input_tokens` includes `cached_input_tokens` (OpenAI counts cached tokens
inside the input), so the uncached part is input - cached. An unknown model is priced at the most expensive
current tier, so `max_cost` errs on the side of stopping early. Update these tables when prices change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClaudeRates:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    long_prompt_above: int | None = None  # prompt tokens above which `long` applies (per message)
    long: ClaudeRates | None = None


WEB_SEARCH_USD = 0.01


def _tier(i: float, o: float, cache_read: float | None = None) -> ClaudeRates:
    # Anthropic's rule: cache writes 1.25x input (5 min) or 2x (1 h); cache reads 0.1x unless a model says otherwise
    return ClaudeRates(i, o, i * 1.25, i * 2, i * 0.1 if cache_read is None else cache_read)


_HAIKU_55_LONG = _tier(0.5, 2.5)
CLAUDE_TIERS: dict[str, ClaudeRates] = {
    "haiku_35": _tier(0.8, 4),
    "haiku_45": _tier(1, 5),
    "haiku_55": ClaudeRates(0.1, 0.5, 0.125, 0.2, 0.01, 100_000, _HAIKU_55_LONG),
    "tier_2_10": _tier(2, 10),
    "tier_2_10_cache_read_0_10": _tier(2, 10, 0.1),
    "tier_3_15": _tier(3, 15),
    "tier_4_20_cache_read_0_20": _tier(4, 20, 0.2),
    "tier_5_25": _tier(5, 25),
    "tier_8_40_cache_read_0_20": _tier(8, 40, 0.2),
    "tier_10_50": _tier(10, 50),
    "tier_10_50_cache_read_0_25": _tier(10, 50, 0.25),
    "tier_15_75": _tier(15, 75),
}
CLAUDE_DEFAULT_TIER = "tier_5_25"  # what Claude Code charges for a model missing from its catalog

# Claude Code's catalog ids -> pricing tier; a model name matches the longest id it starts with
CLAUDE_MODELS: dict[str, str] = {
    "claude-3-5-haiku": "haiku_35",
    "claude-haiku-4-5": "haiku_45",
    "claude-haiku-5-5": "haiku_55",
    "claude-3-5-sonnet": "tier_3_15",
    "claude-3-7-sonnet": "tier_3_15",
    "claude-sonnet-4": "tier_3_15",  # 4-0, 4-5, 4-6 and dated ids such as claude-sonnet-4-20250514
    "claude-sonnet-5": "tier_2_10",
    "claude-sonnet-5-5": "tier_2_10_cache_read_0_10",
    "claude-opus-4": "tier_15_75",  # claude-opus-4-20250514, 4-0, 4-1
    "claude-opus-4-5": "tier_5_25",
    "claude-opus-4-6": "tier_5_25",
    "claude-opus-4-7": "tier_5_25",
    "claude-opus-4-8": "tier_5_25",
    "claude-opus-5": "tier_5_25",
    "claude-opus-5-5": "tier_4_20_cache_read_0_20",
    "claude-fable-5": "tier_10_50",
    "claude-fable-5-1": "tier_10_50_cache_read_0_25",
    "claude-fable-5-2": "tier_8_40_cache_read_0_20",
    "claude-mythos-5": "tier_10_50",
    "claude-mythos-5-1": "tier_10_50_cache_read_0_25",
    "claude-mythos-5-2": "tier_8_40_cache_read_0_20",
}


def normalise_claude_model(model: str) -> str:
    """`us.anthropic.claude-sonnet-4-5-20250929-v1:0`, `claude-sonnet-4-5@20250929`, `...[1m]` -> bare id."""
    m = model.strip().lower()
    m = re.sub(r"\[\d+m\]$", "", m)
    m = re.sub(r"^(?:[a-z]{2,6}\.)?anthropic\.", "", m)  # bedrock / mantle prefixes
    m = re.sub(r"-v\d+(?::\d+)?$", "", m)
    return re.sub(r"[-@]\d{8}$", "", m)


def claude_rates(model: str) -> ClaudeRates:
    name = normalise_claude_model(model)
    best = ""
    for prefix in CLAUDE_MODELS:
        # a prefix matches at a word boundary only: claude-opus-4 must not claim claude-opus-45
        if (name == prefix or name.startswith(prefix + "-")) and len(prefix) > len(best):
            best = prefix
    return CLAUDE_TIERS[CLAUDE_MODELS[best] if best else CLAUDE_DEFAULT_TIER]


def _n(usage: Mapping[str, Any], key: str) -> float:
    v = usage.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def claude_cost(model: str, usage: Mapping[str, Any]) -> float:
    """USD of one API message's usage (as in an `assistant` line's message.usage), priced as Claude Code does."""
    rates = claude_rates(model)
    cache_write = _n(usage, "cache_creation_input_tokens")
    cache_read = _n(usage, "cache_read_input_tokens")
    prompt = _n(usage, "input_tokens") + cache_read + cache_write
    if rates.long is not None and rates.long_prompt_above is not None and prompt > rates.long_prompt_above:
        rates = rates.long
    split = usage.get("cache_creation")
    one_hour = min(_n(split, "ephemeral_1h_input_tokens"), cache_write) if isinstance(split, Mapping) else 0.0
    usd = (
        _n(usage, "input_tokens") * rates.input
        + _n(usage, "output_tokens") * rates.output
        + cache_read * rates.cache_read
        + one_hour * rates.cache_write_1h
        + (cache_write - one_hour) * rates.cache_write_5m
    ) / 1e6
    if usage.get("inference_geo") == "us":
        usd *= 1.1
    tools = usage.get("server_tool_use")
    return usd + (_n(tools, "web_search_requests") * WEB_SEARCH_USD if isinstance(tools, Mapping) else 0.0)


@dataclass(frozen=True)
class OpenAIRates:
    input: float
    cached_input: float
    output: float


# OpenAI list prices (USD per million tokens, standard tier); longest matching prefix wins
OPENAI_MODELS: dict[str, OpenAIRates] = {
    "gpt-5": OpenAIRates(1.25, 0.125, 10),  # gpt-5, gpt-5-codex
    "gpt-5.1": OpenAIRates(1.25, 0.125, 10),  # gpt-5.1, gpt-5.1-codex, gpt-5.1-codex-max
    "gpt-5-mini": OpenAIRates(0.25, 0.025, 2),
    "gpt-5-nano": OpenAIRates(0.05, 0.005, 0.4),
    "gpt-5.1-codex-mini": OpenAIRates(0.25, 0.025, 2),
    "gpt-5.2": OpenAIRates(1.75, 0.175, 14),  # gpt-5.2, gpt-5.2-codex
    "gpt-5.3": OpenAIRates(1.75, 0.175, 14),  # gpt-5.3-codex
    "gpt-5.4": OpenAIRates(2.5, 0.25, 15),
    "gpt-5.4-mini": OpenAIRates(0.75, 0.075, 4.5),
    "gpt-5.5": OpenAIRates(5, 0.5, 30),
    "gpt-4.1": OpenAIRates(2, 0.5, 8),
    "gpt-4.1-mini": OpenAIRates(0.4, 0.1, 1.6),
    "o3": OpenAIRates(2, 0.5, 8),
    "o4-mini": OpenAIRates(1.1, 0.275, 4.4),
    "codex-mini-latest": OpenAIRates(1.5, 0.375, 6),
}
OPENAI_UNKNOWN = OpenAIRates(5, 0.5, 30)  # the dearest current tier: never under-count against max_cost


def openai_rates(model: str) -> OpenAIRates:
    name = model.strip().lower().removeprefix("openai/")
    # "-" is the only separator: gpt-5.9 must not pass for gpt-5 and be priced low
    matches = [p for p in OPENAI_MODELS if name == p or name.startswith(p + "-")]
    return OPENAI_MODELS[max(matches, key=len)] if matches else OPENAI_UNKNOWN


def openai_cost(model: str, usage: Mapping[str, Any]) -> float:
    """USD of a codex `turn.completed` usage: {input_tokens (cached included), cached_input_tokens, output_tokens}."""
    rates = openai_rates(model)
    cached = min(_n(usage, "cached_input_tokens"), _n(usage, "input_tokens"))
    fresh = _n(usage, "input_tokens") - cached
    return (fresh * rates.input + cached * rates.cached_input + _n(usage, "output_tokens") * rates.output) / 1e6
