"""Sampling parameters are checked when they are made, with one-line errors, never wrapped or deferred."""

from __future__ import annotations

import math

import pytest

from edgekit.errors import InputError
from edgekit.runtime.types import GenerationParams


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
        ({"timeout_s": 0.0}, "timeout"),
        ({"timeout_s": math.inf}, "timeout"),
        ({"timeout_s": math.nan}, "timeout"),
        ({"seed": 2**32}, "seed"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_are_refused_when_made(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        GenerationParams(**kwargs)  # type: ignore[arg-type]


def test_the_edges_of_the_ranges_are_accepted() -> None:
    GenerationParams(max_tokens=1, temperature=0.0, top_p=1.0, seed=0)
    GenerationParams(seed=2**32 - 1, timeout_s=0.5)
