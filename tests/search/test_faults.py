"""The test-only fault hooks: read from VIDARCH_TEST_FAULTS, never from the run config."""

from __future__ import annotations

import pytest

from search import faults
from search.design.composing import ConfigError, compose


def test_hooks_are_read_from_the_environment_only() -> None:
    assert faults.from_env({}) == {}
    assert faults.from_env({faults.ENV: "fail_on_seed=1, epoch_sleep_s=0.5"}) == {
        "fail_on_seed": 1, "epoch_sleep_s": 0.5}
    for bad in ("crash=1", "fail_on_seed", "nan_on_seed=x"):
        with pytest.raises(ValueError, match=faults.ENV):
            faults.from_env({faults.ENV: bad})
    with pytest.raises(ConfigError, match="testing"):  # no longer a config key
        compose(["study=smoke", "testing.fail_on_seed=1"])
