"""The softphone's resampler (static/resampler.js), the one both audio worklets use, run under Node:
speech frequencies pass untouched, and what lies above the call's Nyquist rate does not fold back into
them (nearest-sample picking, as the project we grew from did, aliases it at full strength)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

RESAMPLER = Path(__file__).resolve().parents[2] / "local_stack" / "softphone" / "static" / "resampler.js"

# A second of a sine at `f` Hz, fed in 128-sample blocks as a worklet gets it; the output's level in dB.
PROBE = """
import { Resampler } from %s;
const [inRate, outRate, freqs] = %s;
const out = {};
for (const f of freqs) {
  const r = new Resampler(inRate, outRate);
  const x = Float32Array.from({ length: inRate }, (_, i) => Math.sin(2 * Math.PI * f * i / inRate));
  const y = [];
  for (let i = 0; i < x.length; i += 128) y.push(...r.push(x.subarray(i, i + 128)));
  const tail = y.slice(outRate / 10);  // past the start-up transient
  const rms = Math.sqrt(tail.reduce((a, v) => a + v * v, 0) / tail.length);
  out[f] = { db: 20 * Math.log10(rms / Math.SQRT1_2 + 1e-12), samples: y.length };
}
console.log(JSON.stringify(out));
"""


def levels(in_rate: int, out_rate: int, freqs: list[int]) -> dict[str, dict[str, float]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (the README's set-up installs the softphone's bundle with npm)")
    script = PROBE % (json.dumps(RESAMPLER.as_uri()), json.dumps([in_rate, out_rate, freqs]))
    ran = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, dict[str, float]] = json.loads(ran.stdout)
    return result


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44_100, 24_000), (48_000, 16_000), (48_000, 24_000)])
def test_the_microphone_is_brought_to_the_call_rate_without_aliasing(in_rate: int, out_rate: int) -> None:
    nyquist = out_rate // 2
    speech = [300, 1_000, 3_400]
    above = [nyquist + 1_000, nyquist + 4_000, in_rate // 2 - 2_000]
    found = levels(in_rate, out_rate, speech + above)
    for f in speech:
        assert abs(found[str(f)]["db"]) < 0.1, (f, found)  # flat where speech is
        assert abs(found[str(f)]["samples"] - out_rate) <= 40  # the rate asked for, a few samples of delay
    for f in above:
        assert found[str(f)]["db"] < -60, (f, found)  # would alias into the call: gone


def test_the_assistants_voice_is_brought_to_the_device_rate_unchanged() -> None:
    found = levels(24_000, 44_100, [1_000, 5_000])
    assert all(abs(v["db"]) < 0.1 for v in found.values()), found
