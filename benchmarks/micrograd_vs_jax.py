"""One forward+backward of the moons MLP(2, [16, 16, 1]) on 100 points: micrograd against
jax.jit(jax.value_and_grad(...)) of the same loss (max-margin + 1e-4 L2), both in this process
(one is pure Python). micrograd is timed with Python's cycle collector on and paused (as
timeit runs it); JAX's first call (trace + compile) is reported on its own.

    python -m benchmarks micrograd [--quick]
"""

from __future__ import annotations

import functools
import gc
import statistics
import time

import jax
import jax.numpy as jnp

from makemore_jax.micrograd.compare import loss_jax, loss_micrograd, mlp_params
from makemore_jax.micrograd.demos import make_moons
from makemore_jax.micrograd.nn import MLP

SIZES = {"full": (9, 300), "quick": (3, 20), "toy": (1, 3)}  # repeats: micrograd, JAX


def _median_seconds(fn, repeats: int, *, gc_paused: bool = False) -> float:
    times, was_enabled = [], gc.isenabled()
    if gc_paused:
        gc.disable()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    if was_enabled:
        gc.enable()
    return statistics.median(times)


def main(quick: bool = False, mode: str | None = None) -> dict:
    """Time both; print a table; return {"micrograd_ms", "micrograd_gc_paused_ms", "jax_us",
    "jax_first_call_s", "ratio", "ratio_gc_paused", "loss_micrograd", "loss_jax", ...}."""
    repeats_micrograd, repeats_jax = SIZES[mode or ("quick" if quick else "full")]
    X, y = make_moons(100, noise=0.1, seed=0)  # (100, 2), (100,)
    mlp, xs, ys = MLP(2, [16, 16, 1], nonlin="relu", linear_out=True, seed=0), X.tolist(), y.tolist()

    def micrograd_step() -> float:
        loss = loss_micrograd(mlp, xs, ys, loss="max_margin")
        mlp.zero_grad()
        loss.backward()
        return loss.data

    loss_mg, micrograd_s = micrograd_step(), _median_seconds(micrograd_step, repeats_micrograd)
    paused_s = _median_seconds(micrograd_step, repeats_micrograd, gc_paused=True)
    params = mlp_params(mlp)
    X_dev, y_dev = jnp.asarray(X, params[0]["W"].dtype), jnp.asarray(y, params[0]["W"].dtype)
    step = jax.jit(jax.value_and_grad(functools.partial(loss_jax, loss="max_margin", nonlin="relu", linear_out=True)))
    start = time.perf_counter()
    loss_j, _ = jax.block_until_ready(step(params, X_dev, y_dev))  # trace + compile + run
    first_call_s = time.perf_counter() - start
    jax_s = _median_seconds(lambda: jax.block_until_ready(step(params, X_dev, y_dev)), repeats_jax)
    f = {"micrograd_ms": micrograd_s * 1e3, "micrograd_gc_paused_ms": paused_s * 1e3, "jax_us": jax_s * 1e6,
         "jax_first_call_s": first_call_s, "ratio": micrograd_s / jax_s, "ratio_gc_paused": paused_s / jax_s,
         "loss_micrograd": loss_mg, "loss_jax": float(loss_j), "device": str(jax.devices()[0]),
         "dtype": str(params[0]["W"].dtype), "repeats_micrograd": repeats_micrograd, "repeats_jax": repeats_jax}
    print(f"moons MLP(2, [16, 16, 1]), 100 points, forward + backward; JAX on {f['device']} in {f['dtype']}; "
          f"loss {loss_mg:.6f} (micrograd) vs {f['loss_jax']:.6f} (JAX)\n\n| implementation | median time |\n|---|---|")
    print(f"| micrograd ({repeats_micrograd} runs) | {f['micrograd_ms']:.1f} ms |\n"
          f"| micrograd, cycle collector paused | {f['micrograd_gc_paused_ms']:.1f} ms |\n"
          f"| jax.jit(jax.value_and_grad) ({repeats_jax} runs) | {f['jax_us']:.1f} µs |\n"
          f"| JAX first call (trace + compile) | {f['jax_first_call_s'] * 1e3:.0f} ms |\n"
          f"| ratio micrograd / JAX | {f['ratio']:,.0f}x ({f['ratio_gc_paused']:,.0f}x paused) |")
    return f
