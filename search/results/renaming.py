"""Rename a stored study, e.g. to keep a superseded run beside its rerun.

``python -m search.results.renaming DB OLD NEW [--variants]`` renames study ``OLD`` to ``NEW``;
with ``--variants`` also every variant ``OLD.<label>`` to ``NEW.<label>``
(``search.design.variants``). Nothing else changes: trials, results, curves and stored
summaries hang on the study's id, and the stored config keeps the name it ran under (its
provenance). So ``python -m search.run study=X`` with new settings can then run as ``X`` again,
while the first run stays readable under its new name (``docs/findings.md``: superseded runs).

Refused, with one line and exit 2, and nothing written: a name that is not a safe study name
(``search.results.names``), no study called ``OLD``, a study already called ``NEW``, or a study
that a driver is running now (its lease, ``search.results.lease``, has not expired).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy import Engine, select, update

from search.results.lease import LEASES
from search.results.names import name_problem
from search.results.schema import StudyRow, utcnow

VARIANT_SEPARATOR = "."  # <study>.<label>, as search.design.variants names a variant study


class RenameError(ValueError):
    """A rename that was refused; the message is the one line to print."""


def plan(names: Sequence[str], old: str, new: str, *, variants: bool = False
         ) -> list[tuple[str, str]]:
    """The (old, new) name pairs to rename, checked against the names already stored."""
    for role, name in (("OLD", old), ("NEW", new)):
        problem = name_problem(name)
        if problem is not None:
            raise RenameError(f"{role}: {problem}")
    stored = set(names)
    pairs = [(old, new)] if old in stored else []
    if variants:
        prefix = old + VARIANT_SEPARATOR
        pairs += [(n, new + VARIANT_SEPARATOR + n[len(prefix):])
                  for n in sorted(stored) if n.startswith(prefix)]
    if not pairs:
        raise RenameError(f"OLD: no study called {old!r}"
                          + (f" and none called {old}.<label>" if variants else ""))
    for _, target in pairs:
        problem = name_problem(target)
        if problem is not None:
            raise RenameError(f"NEW: {problem}")
        if target in stored:
            raise RenameError(f"NEW: a study called {target!r} is already stored")
    return pairs


def rename(engine: Engine, old: str, new: str, *, variants: bool = False
           ) -> list[tuple[str, str]]:
    """Rename in one transaction; returns the (old, new) pairs. Raises ``RenameError``."""
    with engine.begin() as conn:
        names = conn.execute(select(StudyRow.name)).scalars().all()
        pairs = plan(names, old, new, variants=variants)
        running = conn.execute(select(LEASES.c.study_name).where(
            LEASES.c.study_name.in_([o for o, _ in pairs]),
            LEASES.c.expires_at > utcnow())).scalars().all()
        if running:
            raise RenameError(f"OLD: study {sorted(running)[0]!r} is being run now (its lease "
                              "has not expired); rename it once the run has ended")
        for before, after in pairs:
            conn.execute(update(StudyRow).where(StudyRow.name == before).values(name=after))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Rename a stored study (and with --variants its variant studies)."""
    from search.results.dberrors import StoreError
    from search.results.opening import open_stored

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("db", help="database path or URL")
    parser.add_argument("old", help="the study's name now")
    parser.add_argument("new", help="its new name")
    parser.add_argument("--variants", action="store_true",
                        help="also rename every OLD.<label> to NEW.<label>")
    args = parser.parse_args(argv)
    try:
        engine = open_stored(args.db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        pairs = rename(engine, args.old, args.new, variants=args.variants)
    except RenameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    for before, after in pairs:
        print(f"{before} -> {after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
