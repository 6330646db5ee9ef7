"""Sweep throughput: 8 lecture-2 MLP runs (--init unit, batch 32) trained at once by `sweep.train_sweep`
(one XLA host device per core, as `makemore-jax sweep`) against the same runs one after another on
the fused engine; every repeat a fresh worker. Aggregate steps/s (training seconds) and process s.

    python -m benchmarks sweep [--quick]
"""

import os
import statistics
import time

from benchmarks.harness import Side, compare, markdown, mode_of, pool

LRS, SEEDS, BATCH = (0.05, 0.1), (1, 2, 3, 4), 32  # 2 x 4 = 8 runs
SERIAL, SWEPT = "one after another", "swept at once"
SIZES = {"full": (10_000, 5), "quick": (200, 1), "toy": (20, 1)}  # steps per run, repeats


def side(swept: bool, chunk: int = 1000):
    """Factory (fresh worker): run(n) trains the 8 runs n steps each -> (8 n, last loss, training seconds)."""
    from makemore_jax import parallel
    if swept:
        parallel.request_host_devices()  # before JAX's first computation
    import jax

    from makemore_jax import sweep
    from makemore_jax.train import TrainConfig, create_train_state, make_optimizer, make_train_chunk, make_train_step

    from benchmarks.sides import fused_run, problem
    model, config, X, Y, _ = problem("mlp", {"init": "unit"})
    runs = lambda n: sweep.grid(model, config, TrainConfig(steps=n, batch_size=BATCH, chunk_size=min(n, chunk)),  # noqa
                                {"lr": list(LRS)}, list(SEEDS))
    chunks = {}  # (lr, chunk) -> compiled chunk, reused over the seeds

    def run(n):
        if swept:
            result = sweep.train_sweep(model, runs(n), X, Y, quiet=True)
            return len(result.runs) * n, float(result.curves[0][-1]), result.seconds - result.compile_seconds
        seconds, c = 0.0, min(n, chunk)
        for r in runs(n):
            ts = create_train_state(model, r.config, r.train_config, jax.random.key(r.seed))
            if (r.train_config.lr, c) not in chunks:
                step = make_train_step(model, r.config, make_optimizer(r.train_config, model.param_labels))
                chunks[r.train_config.lr, c] = make_train_chunk(step, c, BATCH).lower(ts, X, Y).compile()
            t = time.perf_counter()
            units, loss = fused_run(chunks[r.train_config.lr, c], ts, X, Y, c)(n)
            seconds += time.perf_counter() - t
        return len(LRS) * len(SEEDS) * units, loss, seconds
    return run, {"devices": len(jax.devices())}


def main(quick: bool = False, mode: str | None = None) -> dict:
    """Time both sides in alternating fresh processes; print a table; return the figures and ratios."""
    steps, repeats = SIZES[mode_of(quick, mode)]
    sides = {name: Side("jax", "benchmarks.sweep:side", {"swept": swept}, n=steps)
             for name, swept in ((SERIAL, False), (SWEPT, True))}
    with pool() as workers:
        figures = compare(workers, sides, repeats=repeats, fresh=True)
    rate = {s: f.get("rate") for s, f in figures.items()}
    wall = {s: statistics.median(f["process_s"]) if f.get("process_s") else None for s, f in figures.items()}
    compile_s = {s: f.get("first_call_s") for s, f in figures.items()}
    ratio = rate[SWEPT] / rate[SERIAL] if rate[SWEPT] and rate[SERIAL] else None
    e2e = wall[SERIAL] / wall[SWEPT] if wall[SERIAL] and wall[SWEPT] else None
    print(f"\n{len(LRS) * len(SEEDS)} lecture-2 MLP runs (lr {'/'.join(map(str, LRS))} x {len(SEEDS)} seeds), batch "
          f"{BATCH}, {steps:,} steps each; {repeats} alternating fresh processes per side (median); {os.cpu_count()} "
          "CPUs\n")
    markdown("side | devices: | aggregate steps/s (training): | first call s (compile): | process s (all in):",
             [[s, f.get("devices", "—"), f"{f.get('rate', 0):,.0f}", f"{compile_s[s] or 0:.1f}", f"{wall[s] or 0:.1f}"]
              for s, f in figures.items()])
    if ratio:
        print(f"\nswept / one after another: {ratio:.2f}x aggregate training steps/s, {e2e:.2f}x end to end")
    return {"sides": figures, "steps_per_s": rate, "process_seconds": wall, "compile_seconds": compile_s,
            "ratio": ratio, "end_to_end_ratio": e2e, "steps": steps, "repeats": repeats}
