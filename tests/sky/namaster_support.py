"""pymaster (NaMaster) for the cross-checks of the flat-sky estimators: skipped when missing, except in
CI, which builds it (.ci/run) and sets CENN_REQUIRE_NAMASTER=1, so that there a missing one fails."""

import importlib
import os

import pytest


def import_pymaster():
    """The pymaster module; skips the calling test without it unless CENN_REQUIRE_NAMASTER=1."""
    if os.environ.get("CENN_REQUIRE_NAMASTER") == "1":
        return importlib.import_module("pymaster")
    return pytest.importorskip("pymaster", reason="the NaMaster cross-check needs pymaster, built from "
                               "source: see 'NaMaster cross-check' in docs/evaluation.md")
