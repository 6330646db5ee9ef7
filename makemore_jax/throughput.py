"""Training throughput: tokens per second, and the model FLOPs utilisation (MFU) where the device's peak is known.

MFU is nanoGPT's estimate_mfu (after PaLM's appendix B): the FLOPs a trained token costs (the
model's `Flops` ability; a transformer's 6 N + 12 L H Q T) times the tokens trained per
second, over the peak FLOP/s of the devices that trained them at the run's matmul dtype.

PEAK_TFLOPS holds NVIDIA's spec-sheet peaks, dense (half the "with sparsity" figures), keyed
on patterns of jax's `device_kind`. The float32 column is TF32's: JAX's default matmul
precision runs float32 matmuls on the tensor cores as TF32 on these GPUs, so that is the
rate a float32 run can reach. A device not in the table (a CPU) gets tokens/s and no MFU.
"""

from __future__ import annotations

import dataclasses
import re

PEAK_TFLOPS = (  # (device_kind pattern, bfloat16, float32 as TF32) dense TFLOP/s; the first match wins
    (r"H100.*PCIe", 756.5, 378.0),
    (r"H[12]00 NVL", 835.5, 417.5),
    (r"H100|H200", 989.5, 494.5),  # SXM (and GH200's)
    (r"A100", 312.0, 156.0),
    (r"L40S", 362.0, 183.0),
    (r"\bL4\b", 121.0, 60.0),
    (r"\bA10\b", 125.0, 62.5),
)
DTYPE_COLUMN = {"bfloat16": 1, "float32": 2}


def peak_flops(device_kind: str, dtype: str) -> float | None:
    """One device's dense peak FLOP/s for `dtype` matmuls (PEAK_TFLOPS), or None where it is not known."""
    for row in PEAK_TFLOPS:
        if re.search(row[0], device_kind):
            return row[DTYPE_COLUMN[dtype]] * 1e12
    return None


def rate(steps: int, seconds: float) -> str:
    """"1,234 steps/s", "2.50 steps/s", or for a step over a second "12.3 s/step"."""
    if seconds <= 0 or steps <= 0:
        return "- steps/s"
    per_second = steps / seconds
    if per_second >= 10:
        return f"{per_second:,.0f} steps/s"
    return f"{per_second:.2f} steps/s" if per_second >= 1 else f"{seconds / steps:.2f} s/step"


@dataclasses.dataclass(frozen=True)
class Throughput:
    """What a step trains and costs: tokens and FLOPs, and the peak FLOP/s of the devices that run it."""

    tokens_per_step: int  # rows x positions of one step (every micro-batch)
    flops_per_token: float
    peak: float | None  # the devices' summed peak FLOP/s at the run's matmul dtype; None: not known

    def figures(self, steps: int, seconds: float) -> dict:
        """{"tokens_per_s", "mfu"} of `steps` steps in `seconds` (mfu a fraction, None without a peak)."""
        tokens_per_s = self.tokens_per_step * steps / seconds if seconds > 0 else 0.0
        mfu = tokens_per_s * self.flops_per_token / self.peak if self.peak else None
        return {"tokens_per_s": tokens_per_s, "mfu": mfu}

    def line(self, steps: int, seconds: float) -> str:
        """"12,345 tokens/s  MFU 41.2%" (no MFU where the peak is not known)."""
        return describe(self.figures(steps, seconds))


def describe(figures: dict) -> str:
    mfu = figures.get("mfu")
    return f"{figures['tokens_per_s']:,.0f} tokens/s" + (f"  MFU {100 * mfu:.1f}%" if mfu is not None else "")


def of_run(flops_per_token: float, tokens_per_step: int, dtype: str, devices) -> Throughput:
    """The Throughput of a run on `devices` (jax devices; their kinds' peaks summed, None if any is unknown)."""
    peaks = [peak_flops(d.device_kind, dtype) for d in devices]
    return Throughput(tokens_per_step, flops_per_token, None if None in peaks else sum(peaks))
