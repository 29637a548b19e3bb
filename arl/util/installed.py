"""What else is installed beside arl that breaks it: autoresearch-lab's distribution ships the same `arl` command
and `autoresearch_lab` package, so uninstalling it later removes arl's too. Checked where a lab starts (init,
preflight), not on every command: reading the environment's metadata costs a few milliseconds."""

from __future__ import annotations

import sys


def autoresearch_lab_warning() -> str | None:
    """The warning to print when autoresearch-lab is installed in this environment, else None."""
    from importlib import metadata

    try:
        version = metadata.version("autoresearch-lab")
    except metadata.PackageNotFoundError:
        return None
    return (
        f"arl: warning: autoresearch-lab {version} is installed in this environment ({sys.prefix}); it owns the same "
        "`arl` command and `autoresearch_lab` package, so `pip uninstall autoresearch-lab` later removes arl's too. "
        "Do it now, then reinstall arl: pip uninstall -y autoresearch-lab && pip install --force-reinstall ."
        " (in a checkout of arl)"
    )


def warn_about_conflicts() -> None:
    found = autoresearch_lab_warning()
    if found:
        print(found, file=sys.stderr)
