"""The one error class arl raises; the CLI turns it into `arl: error: ...`."""

from __future__ import annotations


class ArlError(Exception):
    """A problem the user can fix; shown as one line, exit 1."""

    exit_code = 1


class UsageError(ArlError):
    """A wrong command line; exit 2 like argparse."""

    exit_code = 2
