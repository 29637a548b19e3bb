"""The pipeline the agent improves: a curve model with a few hand-set constants."""

import math

# Constants a researcher guessed; the research loop tunes them.
HEIGHT = 1.0
SHARPNESS = 0.3
CENTER = 1.5
SLOPE = 0.0
OFFSET = 0.0


def predict(xs):
    return [HEIGHT * math.tanh(SHARPNESS * (x - CENTER)) + SLOPE * x + OFFSET for x in xs]
