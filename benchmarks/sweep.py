"""Sweep throughput: 8 lecture-2 MLP runs (--init unit, batch 32) trained at once by `sweep.train_sweep`
(one XLA host device per core, as `makemore-jax sweep`) against the same runs one after another on
the fused engine; every repeat a fresh worker. Aggregate steps/s (training seconds) and process s.

    python -m benchmarks sweep [--quick]
"""

import os
import statistics
import time

from benchmarks.harness import alternate, markdown, one_call, summary

LRS, SEEDS, BATCH = (0.05, 0.1), (1, 2, 3, 4), 32  # 2 x 4 = 8 runs
SERIAL, SWEPT = "one after another", "swept at once"
SIZES = {"full": (10_000, 5), "quick": (200, 1), "toy": (20, 1)}  # steps per run, repeats


def timed(swept: bool, steps: int, chunk: int = 1000) -> dict:
    """Worker call (a fresh process): the 8 runs `steps` steps each; {"steps_per_s" (aggregate, training
    seconds), "compile_s", "loss" (a run's last), "devices"}."""
    from makemore_jax import parallel
    if swept:
        parallel.request_host_devices()  # before JAX's first computation
    import jax

    from makemore_jax import sweep
    from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

    from benchmarks.sides import fused_run, problem
    model, config, X, Y, _ = problem("mlp", {"init": "unit"})
    c = min(steps, chunk)
    runs = sweep.grid(model, config, TrainConfig(steps=steps, batch_size=BATCH, chunk_size=c), {"lr": list(LRS)},
                      list(SEEDS))
    if swept:
        result = sweep.train_sweep(model, runs, X, Y, quiet=True)
        seconds, compile_s, loss = result.seconds - result.compile_seconds, result.compile_seconds, result.curves[0][-1]
    else:
        seconds, compile_s, chunks = 0.0, 0.0, {}  # lr -> its compiled chunk, reused over the seeds
        for r in runs:
            ts, t = create_train_state(model, r.config, r.train_config, jax.random.key(r.seed)), time.perf_counter()
            if r.train_config.lr not in chunks:
                step = make_train_step(model, r.config, make_optimizer(r.train_config, model.param_labels))
                chunks[r.train_config.lr] = make_train_chunk(step, c, BATCH).lower(ts, X, Y).compile()
            compile_s, t = compile_s + time.perf_counter() - t, time.perf_counter()
            loss = fused_run(chunks[r.train_config.lr], ts, X, Y, c)(steps)[1]
            seconds += time.perf_counter() - t
    return {"steps_per_s": len(runs) * steps / seconds, "compile_s": compile_s, "loss": float(loss),
            "devices": len(jax.devices())}


def main(mode: str = "full") -> dict:
    """Both sides in fresh processes, taking turns; print a table; return the figures and ratios."""
    steps, repeats = SIZES[mode]
    runs = alternate({name: lambda _, swept=swept: one_call("jax", "benchmarks.sweep:timed", {
        "swept": swept, "steps": steps}) for name, swept in ((SERIAL, False), (SWEPT, True))}, range(repeats))
    figures = {name: {**summary([r["steps_per_s"] for r in rs]), "value": rs[-1]["loss"], "devices": rs[-1]["devices"],
                      "compile_s": statistics.median(r["compile_s"] for r in rs),
                      "process_s": statistics.median(r["wall_s"] for r in rs)} for name, rs in runs.items()}
    ratio = figures[SWEPT]["rate"] / figures[SERIAL]["rate"]
    e2e = figures[SERIAL]["process_s"] / figures[SWEPT]["process_s"]
    print(f"\n{len(LRS) * len(SEEDS)} lecture-2 MLP runs (lr {'/'.join(map(str, LRS))} x {len(SEEDS)} seeds), batch "
          f"{BATCH}, {steps:,} steps each; {repeats} alternating fresh processes per side (median); {os.cpu_count()} "
          "CPUs\n")
    markdown("side | devices: | aggregate steps/s (training): | compile s: | process s (all in):", [
        [s, f["devices"], f"{f['rate']:,.0f}", f"{f['compile_s']:.1f}", f"{f['process_s']:.1f}"]
        for s, f in figures.items()])
    print(f"\nswept / one after another: {ratio:.2f}x aggregate training steps/s, {e2e:.2f}x end to end")
    return {"sides": figures, "ratio": ratio, "end_to_end_ratio": e2e, "steps": steps, "repeats": repeats}
