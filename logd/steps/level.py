"""The level filter: ``[logging] level``, the minimum level every sink gets.

logd's own records (start, stop, reload, errors) always pass: a client cannot carry logd's
``_pid``, the kernel gives clients theirs. On the compiled path the floor is applied there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from logd.components import Step
from logd.levels import CONFIG_LEVELS, RANK
from logd.settings import choice, setting
from logd.spec import STEP, Context, LevelFloor, Spec


@dataclass(frozen=True)
class LevelSettings:
    level: str = setting("info", doc='minimum level for every sink ("warning" is accepted for "warn")',
                         check=choice(CONFIG_LEVELS, 'one of "debug", "info", "warn", "error"'))


def level_filter(minimum: str) -> Step:
    """Keep records at ``minimum`` or above."""
    floor = RANK[minimum]
    own_pid = os.getpid()
    if floor == 0:
        keep: Step = lambda records: records
    else:
        keep = lambda records: [r for r in records if RANK[r["level"]] >= floor or r.get("_pid") == own_pid]
    keep.drop_reason = "below_level"  # type: ignore[attr-defined]  # counted by reason (Pipeline.drain)
    keep.floor = floor  # type: ignore[attr-defined]  # the compiled path's floor
    return keep


def _build(settings: LevelSettings, ctx: Context) -> Step:
    return level_filter(settings.level)


def _hot(step: Any) -> tuple[LevelFloor]:
    return (LevelFloor(step.floor),)


# reads each record's level and logd's own _pid, which the compiled path leaves to Python
SPEC = Spec(STEP, "level", _build, LevelSettings, table="", reads=frozenset(), hot=_hot)
