"""Where git hooks installed by earlier versions of arl look for arl (`from arl.hookrun import main`); it lives in
arl.lab.hookrun now. Without this a lab's old hooks would find nothing and let every commit through unchecked."""

from arl.lab.hookrun import main

__all__ = ["main"]
