"""The README "Use the SDK" example is the doctest in grpcmesh.sdk.client's module docstring; run it.

It starts a real server on a free port and calls it through a direct-mode client,
so the example in the docs cannot rot.
"""

from __future__ import annotations

import doctest

import grpcmesh.sdk.client


def test_readme_example_runs() -> None:
    result = doctest.testmod(grpcmesh.sdk.client, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 5
    assert result.failed == 0
