"""Study names: one rule for every writer (the driver's ``study.name`` and ``renaming``).

A study name is a database key and the name of Ray Tune's experiment directory, so it must be
safe as a path component: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
digit, no ``..``, at most ``STUDY_NAME_MAX`` characters.
"""

from __future__ import annotations

import re

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STUDY_NAME_MAX = 100


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a study name (one clause), or None when it can."""
    if len(name) > STUDY_NAME_MAX:
        return f"{len(name)} characters, at most {STUDY_NAME_MAX} ({name[:24]!r}...)"
    if not STUDY_NAME.fullmatch(name) or ".." in name:
        return (f"{name!r} is not a safe name: use letters, digits, '.', '_' and '-', starting "
                f"with a letter or digit (no '/' or '..')")
    return None
