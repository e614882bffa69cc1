"""A table of command-line stages: each stage's name, help and arguments, declared on the
function that runs it (`@stage`), so that the command line is built from one place."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Argument = tuple[str, dict[str, Any]]
Run = Callable[[argparse.Namespace, dict[str, Any]], None]


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    run: Run
    arguments: tuple[Argument, ...]


STAGES: dict[str, Stage] = {}


def stage(name: str, help_text: str, *arguments: Argument) -> Callable[[Run], Run]:
    """Enter the decorated function in `STAGES` as stage `name` with these arguments."""

    def enter(run: Run) -> Run:
        STAGES[name] = Stage(name, help_text, run, arguments)
        return run

    return enter


def required(flag: str, help_text: str | None = None) -> Argument:
    """A required path (an input or an output of the rule)."""
    return flag, {"required": True, "help": help_text}


def optional(flag: str, help_text: str | None = None) -> Argument:
    return flag, {"default": None, "help": help_text}


def many(flag: str, help_text: str) -> Argument:
    return flag, {"nargs": "+", "required": True, "help": help_text}
