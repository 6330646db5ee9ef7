"""The speedrun: `gpt-speedrun` against nanoGPT's CPU run, to nanoGPT's own loss.

    python -m benchmarks speedrun               # the race: 3 seeds each side, alternating
    python -m benchmarks speedrun --budget      # the best validation loss of each side in 300 s
    python -m benchmarks speedrun --ablations   # each change added to gpt alone, and left out alone

Target: the reference's mean exact val over the race's seeds. A side's time is its whole run in a fresh
process (compile cache off), also scored on the held-out play. Ablations: losses from runs with the exact
val every EVAL_EVERY steps (two at a time), speeds from short runs one at a time; time to target = the
race's fixed cost (BENCH_OUT/speedrun.json) + first step <= target / speed.
"""

import concurrent.futures
import contextlib
import json
import os
import statistics

from benchmarks import gpt, machine
from benchmarks.harness import best, compare, markdown, one_call, out_dir, pool, thread_sides

HELDOUT = os.path.join(machine.ROOT, "data", "shakespeare_heldout.txt")
SEEDS = (0, 1, 2)
BUDGET_S = 300
# What each side runs in BUDGET_S on the 2-core AMD EPYC: ours the recipe with four blocks of 24 windows
# (the extra time buys depth), the reference its recipe with as many steps as fit (its cosine over all).
BUDGET_STEPS = {"ours": 2210, "reference": 5300}
BUDGET_FLAGS = ("--n-layer", "4", "--batch-size", "24")
EVAL_EVERY = {"gpt": 250, "gpt-speedrun": 25}  # ablation runs: steps between exact validation losses
# One change each: its setting on top of `gpt`, and the setting that removes it from `gpt-speedrun`.
CHANGES = {
    "rotary embeddings": ({"pos": "rotary"}, {"pos": "learned"}),
    "RMSNorm, no gain": ({"norm": "rms-nogain"}, {"norm": "layer"}),
    "QK-norm": ({"qk_norm": True}, {"qk_norm": False}),
    "ReLU² MLP": ({"activation": "relu2"}, {"activation": "gelu"}),
    "untied head": ({"tie_embeddings": False}, {"tie_embeddings": True}),
    "zero-init projections": ({"zero_init_proj": True}, {"zero_init_proj": False}),
    "Muon": ({"optimizer": "muon", "matrix_lr": 0.02}, {"optimizer": "adamw"}),
    "WSD schedule": ({"schedule": "wsd", "warmup_steps": 0, "decay_fraction": 0.5},
                     {"schedule": "cosine", "warmup_steps": 10}),
    "batch 32": ({"batch_size": 32}, {"batch_size": 12}),
    "AdamW lr 0.012": ({"lr": 0.012}, {"lr": 1e-3}),
}
SPEED_FIELDS = ("n_layer", "n_embd", "block_size", "pos", "norm", "qk_norm", "activation", "tie_embeddings",
                "softcap", "optimizer", "batch_size")  # what a step's time depends on
NO_CACHE = {"JAX_COMPILATION_CACHE_DIR": ""}  # every run compiles cold
SPEED_STEPS = 80


def reference_threads() -> int:
    """nanoGPT's faster thread count here (1 or 2): its step timed at each, alternating."""
    if (os.cpu_count() or 1) < 2:
        return 1
    sides = thread_sides("{t}", "benchmarks.sides:torch_training", {"model": "gpt", "variant": "lecture eager"},
                         (1, 2), first_n=2)
    with pool() as workers:
        return int(best(compare(workers, sides, repeats=3, seconds=0.5), sides)[0] or 1)


def race(seeds=SEEDS, steps: int | None = None, threads: int | None = None) -> dict:
    """Both recipes (`steps` replaces both step counts: a toy race), `seeds` each, alternating; print the table."""
    rows, threads = _whole_runs(seeds, steps, steps, threads)
    target = statistics.mean(r["val_loss"] for r in rows["reference"])
    wall = {side: statistics.median(r["wall_s"] for r in rs) for side, rs in rows.items()}
    print(f"Target: the reference's mean exact val over seeds {seeds}: {target:.4f}; reference at {threads} "
          f"thread(s); {machine.cpu_model()}\n")
    markdown("side | seed: | exact val: | held-out play: | at or below target | wall s:", [
        [side, r["seed"], f"{r['val_loss']:.4f}", f"{r.get('heldout_loss', float('nan')):.4f}",
         "yes" if r["val_loss"] <= target else "NO", f"{r['wall_s']:.1f}"] for side, rs in rows.items() for r in rs])
    ratio = wall["ours"] / wall["reference"]
    print(f"\nMedian wall: ours {wall['ours']:.1f} s, reference {wall['reference']:.1f} s: ours takes {ratio:.3f} "
          f"of the reference's time (target <= 1/6).")
    return {"rows": rows, "target": target, "median_wall_s": wall, "ratio": ratio, "threads": threads,
            "all_reach_target": all(r["val_loss"] <= target for r in rows["ours"])}


def budget(steps: dict = BUDGET_STEPS, threads: int | None = None) -> dict:
    """Each side in BUDGET_S (BUDGET_STEPS, BUDGET_FLAGS), one seed: its exact val and wall time."""
    rows, threads = _whole_runs((0,), steps["ours"], steps["reference"], threads, BUDGET_FLAGS)
    markdown("side | steps: | exact val: | wall s:", [[side, f"{steps[side]:,}", f"{r['val_loss']:.4f}",
                                                     f"{r['wall_s']:.1f}"] for side, (r,) in rows.items()])
    gap = rows["reference"][0]["val_loss"] - rows["ours"][0]["val_loss"]
    print(f"\nOurs is {gap:.4f} nats lower (target >= 0.15).")
    return {"rows": rows, "gap": gap, "threads": threads}


def _whole_runs(seeds, ours_steps, reference_steps, threads, flags=()) -> tuple[dict, int]:
    """gpt.whole_runs of gpt-speedrun and nanoGPT (val only, compile cache off), scored on the held-out play."""
    threads = threads or reference_threads()
    return gpt.whole_runs(seeds, model="gpt-speedrun", steps=ours_steps, reference_steps=reference_steps,
                          threads=threads, heldout=HELDOUT, flags=("--no-eval-train", *flags), env=NO_CACHE), threads


# ----------------------------------------------------------------------------- ablations


def variants(base_steps: dict, changes: dict = CHANGES) -> list[dict]:
    """The ablation runs: gpt, gpt + each change, gpt-speedrun, gpt-speedrun - each change."""
    runs = [("gpt (nanoGPT's recipe)", "gpt", {}), ("gpt-speedrun (the recipe)", "gpt-speedrun", {})]
    for change, (add, remove) in changes.items():
        runs += [(f"gpt + {change}", "gpt", add), (f"gpt-speedrun - {change}", "gpt-speedrun", remove)]
    return [{"name": name, "model": m, "overrides": over, "steps": base_steps[m]} for name, m, over in runs]


def _fit(variant: dict, steps: int, chunk: int, val: bool = False, seed: int = 0) -> tuple:
    """Train `variant` (model, overrides) `steps` steps on the corpus as the CLI would: (summary, [[step,
    exact val after each chunk], ...] if `val`)."""
    from makemore_jax import loop
    from makemore_jax.evaluate import kind_loss
    from makemore_jax.lifecycle import new_run, prepare
    from makemore_jax.train import fit
    run, curve = new_run(prepare(variant["model"], data=gpt.CORPUS, overrides={
        **variant["overrides"], "steps": steps, "chunk_size": chunk, "eval_train": False}), seed), []
    record = loop.Call(lambda ts: curve.append([int(ts.step), kind_loss(
        run.model, run.config, ts.params, ts.model_state, run.splits["val"])]))
    return fit(run.model, run.config, run.train_config, *run.splits["train"], run.state,
               callbacks=[record] if val else [])[1], curve


def trace(variant: dict) -> dict:
    """Worker call: train one variant, the exact val loss every EVAL_EVERY steps: {"trace": [[step, val], ...]}."""
    return {"trace": _fit(variant, variant["steps"], min(EVAL_EVERY[variant["model"]], variant["steps"]), val=True)[1]}


def speed(variant: dict) -> dict:
    """Worker call: steps/s of one variant's training after its compile (a short run): {"steps_per_s": ...}."""
    s = _fit(variant, SPEED_STEPS, SPEED_STEPS // 2)[0]
    return {"steps_per_s": s["steps"] / (s["seconds"] - s["compile_seconds"])}


def speed_key(v: dict) -> str:
    """What a variant's step time depends on (SPEED_FIELDS): variants with one key share one speed run."""
    from makemore_jax import models
    model = models.get(v["model"])
    merged = {**model.config_defaults, **model.train_defaults, **v["overrides"]}
    return json.dumps({k: merged.get(k) for k in SPEED_FIELDS}, sort_keys=True)


def _in_worker(task: str, variant: dict) -> dict:
    return one_call("jax", f"benchmarks.speedrun:{task}", {"variant": variant}, env=NO_CACHE)


def ablations(target: float, fixed_s: float, base_steps: dict, parallel: int = 2, changes: dict = CHANGES) -> list[dict]:
    """Every variant's val trace (`parallel` at a time), then each distinct speed on its own, then the table."""
    vs = variants(base_steps, changes)
    with concurrent.futures.ThreadPoolExecutor(parallel) as lanes:
        traces = list(lanes.map(lambda v: _in_worker("trace", v)["trace"], vs))
    speeds = {}
    for v in vs:  # one at a time: these are timings
        if speed_key(v) not in speeds:
            speeds[speed_key(v)] = _in_worker("speed", v)["steps_per_s"]
    rows = []
    for v, tr in zip(vs, traces):
        sps, hit = speeds[speed_key(v)], next((step for step, val in tr if val <= target), None)
        seconds = None if hit is None else fixed_s + hit / sps
        rows.append({**v, "trace": tr, "steps_per_s": sps, "steps_to_target": hit, "time_to_target_s": seconds})
    markdown(f"run | steps: | val at the last step: | steps/s: | first step <= {target:.4f}: | time to target s:", [
        [r["name"], f"{r['steps']:,}", f"{r['trace'][-1][1]:.4f}", f"{r['steps_per_s']:.1f}",
         r["steps_to_target"] or "not reached", "—" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.1f}"]
        for r in rows])
    return rows


def main(mode: str = "full", argv: list[str] | None = None) -> dict:
    """The race (default), `--budget`, or `--ablations` (with the target and fixed cost of the race saved in
    BENCH_OUT/speedrun.json, else of a race run first). mode "toy": a few steps each, one seed, two changes."""
    argv, toy = list(argv or ()), mode == "toy"
    path = os.path.join(out_dir(), "speedrun.json")
    with open(path) if os.path.isfile(path) else contextlib.nullcontext() as f:
        saved = json.load(f) if f else {}
    threads = 1 if toy else None  # None: measured by the race or budget
    run_race = lambda: race(seeds=(0,), steps=6, threads=threads) if toy else race(threads=threads)  # noqa: E731
    if "--budget" in argv:
        saved["budget"] = budget({"ours": 6, "reference": 6} if toy else BUDGET_STEPS, threads)
    elif "--ablations" in argv:
        from makemore_jax import models
        race_ = saved["race"] = saved.get("race") or run_race()
        steps = {m: 6 if toy else models.get(m).train_defaults["steps"] for m in ("gpt", "gpt-speedrun")}
        ours_sps = _in_worker("speed", variants(steps)[1])["steps_per_s"]
        fixed_s = race_["median_wall_s"]["ours"] - steps["gpt-speedrun"] / ours_sps
        saved["ablations"] = ablations(race_["target"], fixed_s, steps,
                                       changes=dict(list(CHANGES.items())[:2]) if toy else CHANGES)
    else:
        saved["race"] = run_race()
    from makemore_jax.checkpoint import atomic_write
    atomic_write(path, json.dumps(saved, indent=1).encode())
    print(f"\nwrote {path}")
    return saved
