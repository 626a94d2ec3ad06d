"""Reading a 30-s window of a 20-minute file decodes only that window: the peak resident set
size (Linux VmHWM, reset just before the read) is measured in a fresh subprocess, against
a control that reads the whole file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import report

MINUTES = 20
SR = 16000

SCRIPT = r"""
import json, sys
import numpy as np, soundfile as sf
from af2.audio.io import read_audio

def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

path, mode = sys.argv[1], sys.argv[2]
read_audio(path, start=1.0, end=2.0)  # warm up imports and allocators
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size (VmHWM) to the current one
before = kb("VmHWM")
if mode == "window":
    x = read_audio(path, start=900.0, end=930.0).numpy()
else:
    x = sf.read(path, dtype="float32")[0]
print(json.dumps({"delta_mb": (kb("VmHWM") - before) / 1024, "samples": len(x), "first": float(x[0])}))
"""


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "twenty_minutes.wav"
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as f:
        for minute in range(MINUTES):  # a ramp per minute so the window's content is known
            f.write(np.full(60 * SR, (minute + 1) / 32, dtype=np.float32))
    return path


def _peak(path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS reset needs Linux /proc")
def test_window_read_memory_is_bounded(long_file):
    file_mb = long_file.stat().st_size / 2**20
    window = _peak(long_file, "window")
    whole = _peak(long_file, "whole")
    report(
        f"data: 30-s window of a {MINUTES}-min 16 kHz file ({file_mb:.0f} MB): peak RSS +{window['delta_mb']:.1f} MB; "
        f"whole-file read +{whole['delta_mb']:.1f} MB"
    )
    assert window["samples"] == 30 * SR and window["first"] == pytest.approx(16 / 32, abs=1e-4)
    # 30 s of float32 is 1.9 MB; allow decoder blocks and resampler state, far below the file.
    assert window["delta_mb"] < 12
    # The control proves the measurement sees a whole-file decode (77 MB of float32).
    assert whole["delta_mb"] > 60
