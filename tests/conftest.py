"""Shared test fixtures: devices to run on, per-dtype tolerances, and a report section."""

from __future__ import annotations

import os

import pytest
import torch

import af2

CUDA_OK = af2.build_info()["cuda"] and torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA_OK else [])
# AF2_TEST_DEVICES=cuda limits the `device` fixture to the listed devices (benchmarks/gpu_check.sh
# runs the CUDA parametrisations only: CI runs the CPU ones).
if os.environ.get("AF2_TEST_DEVICES"):
    DEVICES = [d for d in DEVICES if d in os.environ["AF2_TEST_DEVICES"].replace(",", " ").split()]

# Tolerances of a fused op's output against the float64 oracle, per input dtype. Each kernel
# computes in float32 (float64 for float64 input) and rounds once on store, so the bound is
# half an ulp of the storage type relative to the output, plus float32 round-off.
TOLERANCES = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=1e-3, atol=1e-4),
    torch.bfloat16: dict(rtol=8e-3, atol=1e-3),
}
FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]

_REPORT: list[str] = []


def report(line: str) -> None:
    """Add a line to the 'af2 report' section printed at the end of the run."""
    _REPORT.append(line)


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("af2 report")
        for line in _REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
