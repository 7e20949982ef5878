"""Runner groups: which runners may take which tasks, by labels.

A deployment runs one or more groups of runners (``HOMERUN_RUNNER_GROUPS``, which the stack
writes from its topology); each runner knows its own labels (``HOMERUN_RUNNER_LABELS``). A
task's ``runs_on`` is a set of labels a runner must all have. In the queue a set of labels
is one string, ``label_set``: its labels sorted and joined by ``,`` (empty for none), so
equal sets are equal strings and one ready line per token and label set can be named.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "LABEL_PATTERN",
    "MAX_LABELS",
    "RunnerGroup",
    "fits",
    "label_set",
    "labels_of",
    "parse_groups",
    "subsets",
    "waiting_for",
]

# No ',' (the separator of a label set), '@' or ':' (they build Redis key names).
LABEL_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# A runner's labels and a task's runs_on: the queue's claim and wake-up look at every
# subset of a runner's labels, so their number is kept small (2**8 wake lists at most).
MAX_LABELS = 8
_LABEL = re.compile(LABEL_PATTERN)
_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class RunnerGroup:
    name: str
    labels: frozenset[str]

    def __str__(self) -> str:
        return f"{self.name} [{', '.join(sorted(self.labels))}]"


def label_set(labels: Iterable[str]) -> str:
    """The canonical string of a set of labels: sorted, unique, comma-joined."""
    return ",".join(sorted(set(labels)))


def labels_of(encoded: str) -> frozenset[str]:
    return frozenset(label for label in encoded.split(",") if label)


def fits(runs_on: Iterable[str], labels: Iterable[str]) -> bool:
    """Whether a runner with ``labels`` may take a task that ``runs_on`` these."""
    return set(runs_on) <= set(labels)


def subsets(labels: Iterable[str]) -> list[str]:
    """Every label set a runner with ``labels`` can take, the empty one first."""
    ordered = sorted(set(labels))
    return [
        label_set(combo)
        for size in range(len(ordered) + 1)
        for combo in itertools.combinations(ordered, size)
    ]


def check_labels(labels: Sequence[str], what: str) -> None:
    """``ValueError`` naming ``what`` unless these are valid, few enough labels."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{what}: at most {MAX_LABELS} labels, got {len(labels)}")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(
                f"{what}: label {label!r} must be 1-63 lowercase letters, digits, '_', '.'"
                " or '-', starting with a letter or digit"
            )


def parse_groups(items: Sequence[str]) -> tuple[RunnerGroup, ...]:
    """``name=label+label`` items (``name=`` for a group without labels) as groups."""
    groups = []
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not _GROUP_NAME.match(name):
            raise ValueError(
                f"runner group {item!r} must be name=label+label (name= for no labels),"
                " the name 1-63 lowercase letters, digits, '_' or '-'"
            )
        labels = [label for label in rest.split("+") if label]
        check_labels(labels, f"runner group {name}")
        groups.append(RunnerGroup(name, frozenset(labels)))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"runner group names must be unique, got {', '.join(names)}")
    return tuple(groups)


def waiting_for(runs_on: Sequence[str]) -> str:
    """What a queued task waits for, in words."""
    if not runs_on:
        return "waiting for a runner"
    return f"waiting for a runner with labels [{', '.join(sorted(runs_on))}]"
