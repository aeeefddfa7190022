"""Test-only fault injection, kept out of the run config: the ``VIDARCH_TEST_FAULTS`` variable.

The end-to-end tests make trials fail, report a NaN loss, or sleep after every epoch (so that a
test can kill the driver mid-trial) by setting, in the driver's environment::

    VIDARCH_TEST_FAULTS="fail_on_seed=1,nan_on_seed=0,epoch_sleep_s=2"

The driver reads it once (``from_env``) and hands the hooks to every trial in its
``TrialContext``, so trials on a cluster see them too. Never set it for a real study.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ENV = "VIDARCH_TEST_FAULTS"
# hook -> type of its value
HOOKS: dict[str, type] = {
    "fail_on_seed": int,  # trials of this seed raise at their first epoch
    "nan_on_seed": int,  # trials of this seed report a NaN loss (train status "nan")
    "epoch_sleep_s": float,  # sleep after every epoch
}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The hooks set in ``VIDARCH_TEST_FAULTS`` (``{}`` when unset); ``ValueError`` naming the
    variable for a malformed entry."""
    raw = (os.environ if environ is None else environ).get(ENV, "")
    hooks: dict[str, Any] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in HOOKS:
            raise ValueError(f"{ENV}: {part!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(HOOKS)}")
        try:
            hooks[key.strip()] = HOOKS[key.strip()](value.strip())
        except ValueError:
            raise ValueError(f"{ENV}: {part!r}: not a number") from None
    return hooks
