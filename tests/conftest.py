import os

import jax
import pytest
from hypothesis import HealthCheck, settings


# x64 on for the tolerance-tight tests (as lineax and optimistix do); the float32 smoke
# run sets GEOMHESS_TEST_X64=0. Strict promotion makes silent upcasts and broadcasts
# fail in tests.
jax.config.update("jax_enable_x64", os.environ.get("GEOMHESS_TEST_X64", "1") != "0")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci",
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def getkey():
    key = jax.random.key(0)

    def next_key():
        nonlocal key
        key, sub = jax.random.split(key)
        return sub

    return next_key
