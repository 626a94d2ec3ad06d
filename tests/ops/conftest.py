"""The op tests' `device` fixture: each device of tests/conftest.py and, on the CPU, every lower
kernel variant this CPU can run as well (docs/cpu_dispatch.md): "cpu" is the automatic choice,
"cpu-avx2" etc. force that variant for the test."""

from __future__ import annotations

import pytest
import torch

import af2
from af2.build import cpu_isa
from tests.conftest import DEVICES

_info = af2.build_info()
# The automatic choice runs as "cpu"; each other runnable variant once more, forced.
_FORCED = [isa for isa in _info["cpu_isas_runnable"] if isa != _info["cpu_isa"]] if "cpu" in DEVICES else []
OP_DEVICES = DEVICES + [f"cpu-{isa}" for isa in _FORCED]


@pytest.fixture(params=OP_DEVICES)
def device(request):
    name = request.param
    if name.startswith("cpu-"):
        with cpu_isa(name[len("cpu-") :]):
            yield torch.device("cpu")
    else:
        yield torch.device(name)
