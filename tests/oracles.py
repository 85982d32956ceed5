"""The reference implementations the tests compare with, loaded so that they import here.

pytorch-ood 0.4.0's package ``__init__`` imports its datasets and models, which import
torchvision; the registry's torchvision is a CUDA build that fails to import against the CPU
torch. The detectors need none of it, so the package is entered without running its
``__init__``: its submodules (``pytorch_ood.detector``, ``pytorch_ood.utils``, ...) import as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest


def pytorch_ood(submodule: str) -> types.ModuleType:
    """``pytorch_ood.<submodule>`` of the installed pytorch-ood (the test extra pins 0.4.0); skips if it is absent."""
    if "pytorch_ood" not in sys.modules:
        spec = importlib.util.find_spec("pytorch_ood")
        if spec is None:
            pytest.skip("pytorch-ood is not installed: pip install -e '.[test]'")
        package = types.ModuleType("pytorch_ood")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["pytorch_ood"] = package
    return importlib.import_module(f"pytorch_ood.{submodule}")


def pytorch_ood_detectors() -> types.ModuleType:
    """``pytorch_ood.detector`` (``pytorch_ood``)."""
    return pytorch_ood("detector")
