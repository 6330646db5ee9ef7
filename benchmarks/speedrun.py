"""The speedrun: `gpt-speedrun` against nanoGPT's CPU run, to nanoGPT's own loss.

    python -m benchmarks speedrun               # the race: 3 seeds each side, alternating
    python -m benchmarks speedrun --budget      # the best validation loss of each side in 300 s
    python -m benchmarks speedrun --ablations   # each change added to gpt alone, and left out alone

The target is the mean exact validation loss of the reference (nanoGPT's CPU recipe,
benchmarks/references/torch_gpt.train, 2,000 steps) over the race's seeds. A side's time
is its whole run in a fresh process: start-up, compiling (JAX's persistent cache off, so
every run compiles cold), training and the exact validation loss; neither side evaluates
its training split. Each run of ours is also evaluated on the held-out play
(data/shakespeare_heldout.txt), a text no recipe was tuned on.

Ablations separate the two things a change moves. The losses come from runs with the exact
validation loss every `EVAL_EVERY` steps (these may run two at a time: losses do not depend
on the machine's load); the speed of each architecture and optimiser comes from a short run
on the quiet machine. Time to the target = the race's measured fixed cost (start-up, compile,
final evaluation) + the first evaluated step at or below the target / that speed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import gpt, machine
from benchmarks.harness import process_env

HELDOUT = os.path.join(machine.ROOT, "data", "shakespeare_heldout.txt")
SEEDS = (0, 1, 2)
THREADS = 2  # the reference's faster thread count on the 2-core machine
BUDGET_S = 300
# What each side runs in BUDGET_S on the 2-core machine: ours the recipe with four blocks (the extra
# time buys depth), the reference its recipe with as many steps as fit (its cosine over all of them).
BUDGET_STEPS = {"ours": 2800, "reference": 6500}
BUDGET_FLAGS = ("--n-layer", "4")
EVAL_EVERY = {"gpt": 250, "gpt-speedrun": 25}  # ablation runs: steps between exact validation losses
# One change each: its setting on top of `gpt`, and the setting that removes it from `gpt-speedrun`.
CHANGES = {
    "rotary embeddings": ({"pos": "rotary"}, {"pos": "learned"}),
    "RMSNorm, no gain": ({"norm": "rms-nogain"}, {"norm": "layer"}),
    "QK-norm": ({"qk_norm": True}, {"qk_norm": False}),
    "ReLU² MLP": ({"activation": "relu2"}, {"activation": "gelu"}),
    "untied head": ({"tie_embeddings": False}, {"tie_embeddings": True}),
    "zero-init projections": ({"zero_init_proj": True}, {"zero_init_proj": False}),
    "logit soft-cap 15": ({"softcap": 15.0}, {"softcap": 0.0}),
    "Muon": ({"optimizer": "muon", "matrix_lr": 0.02}, {"optimizer": "adamw"}),
    "WSD schedule": ({"schedule": "wsd", "warmup_steps": 0, "decay_fraction": 0.5},
                     {"schedule": "cosine", "warmup_steps": 10}),
    "batch 24": ({"batch_size": 24}, {"batch_size": 12}),
}
SPEED_FIELDS = ("n_layer", "n_embd", "block_size", "pos", "norm", "qk_norm", "activation", "tie_embeddings",
                "softcap", "optimizer", "batch_size")  # what a step's time depends on


def ours_command(seed: int, out: str, *, steps: int | None = None, model: str = "gpt-speedrun", extra=()) -> list[str]:
    more = [*(["--steps", str(steps)] if steps else []), *extra]
    return [sys.executable, "-m", "makemore_jax", "train", "--model", model, "--seed", str(seed), "--data", gpt.CORPUS,
            "--out", out, "--overwrite", "--quiet", "-n", "0", "--no-eval-train", *more]


def heldout_loss(out: str) -> float:
    """The exact loss of the run saved in `out` over the whole held-out play, in windows of its block size."""
    from makemore_jax import text
    from makemore_jax.evaluate import kind_loss
    from makemore_jax.run import load_run
    run = load_run(out, data=gpt.CORPUS)
    with open(HELDOUT, encoding="utf-8") as f:
        arrays = text.build_text(f.read(), run.vocab, run.config.block_size)
    ts = run.state
    return kind_loss(run.model, run.config, ts.params, ts.model_state, arrays)


def run_ours(seed: int, *, steps: int | None = None, extra=()) -> dict:
    """One fresh `makemore-jax train --model gpt-speedrun` process: wall time, exact val, held-out loss."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run(ours_command(seed, out, steps=steps, extra=extra), check=True, cwd=machine.ROOT, stdout=subprocess.DEVNULL,
                       env=process_env("jax-xla-threads", {"JAX_COMPILATION_CACHE_DIR": ""}))
        wall = time.perf_counter() - t
        with open(os.path.join(out, "checkpoint.json")) as f:
            val = json.load(f)["results"]["val_loss"]
        return {"val_loss": val, "wall_s": wall, "heldout_loss": heldout_loss(out), "seed": seed}


def run_reference(seed: int, *, steps: int | None = None) -> dict:
    """One fresh nanoGPT run (its CPU recipe; `steps` replaces its 2,000) at THREADS threads, val only."""
    _, vocab = gpt.text_ids()
    train = {**gpt.recipe_for(steps), "train_loss": False}
    spec = gpt.reference_command(gpt.gpt_config(vocab), train, seed, threads=THREADS, heldout=HELDOUT)
    result = gpt.reference_process(spec, THREADS, 0)
    return {**result, "wall_s": result["wall_s"] - result.pop("heldout_s"), "seed": seed}  # the run alone


def alternate(runs: dict, seeds=SEEDS) -> dict:
    """{side: [result per seed]}, the sides taking turns to go first."""
    rows = {side: [] for side in runs}
    for i, seed in enumerate(seeds):
        order = list(runs)[i % 2:] + list(runs)[:i % 2]
        for side in order:
            rows[side].append(runs[side](seed))
            print(f"  {side} seed {seed}: " + json.dumps(rows[side][-1]), flush=True)
    return rows


def race(seeds=SEEDS, steps: int | None = None) -> dict:
    """Both recipes (`steps` replaces both step counts: a toy race), `seeds` each, alternating; print the table."""
    rows = alternate({"ours": lambda s: run_ours(s, steps=steps),
                      "reference": lambda s: run_reference(s, steps=steps)}, seeds)
    target = statistics.mean(r["val_loss"] for r in rows["reference"])
    wall = {side: statistics.median(r["wall_s"] for r in rs) for side, rs in rows.items()}
    print(f"\nTarget: the reference's mean exact val over seeds {seeds}: {target:.4f}; {machine.cpu_model()}\n")
    print("| side | seed | exact val | held-out play | at or below target | wall s |\n|---|---:|---:|---:|---|---:|")
    for side, rs in rows.items():
        for r in rs:
            print(f"| {side} | {r['seed']} | {r['val_loss']:.4f} | {r.get('heldout_loss', float('nan')):.4f} | "
                  f"{'yes' if r['val_loss'] <= target else 'NO'} | {r['wall_s']:.1f} |")
    ratio = wall["ours"] / wall["reference"]
    print(f"\nMedian wall: ours {wall['ours']:.1f} s, reference {wall['reference']:.1f} s: ours takes {ratio:.3f} "
          f"of the reference's time (target <= 0.25).")
    return {"rows": rows, "target": target, "median_wall_s": wall, "ratio": ratio,
            "all_reach_target": all(r["val_loss"] <= target for r in rows["ours"])}


def budget(steps: dict = BUDGET_STEPS) -> dict:
    """Each side in BUDGET_S (BUDGET_STEPS, BUDGET_FLAGS), one seed: its exact val and wall time."""
    rows = alternate({"ours": lambda s: run_ours(s, steps=steps["ours"], extra=BUDGET_FLAGS),
                      "reference": lambda s: run_reference(s, steps=steps["reference"])}, seeds=(0,))
    print("\n| side | steps | exact val | wall s |\n|---|---:|---:|---:|")
    for side, (r,) in rows.items():
        print(f"| {side} | {steps[side]:,} | {r['val_loss']:.4f} | {r['wall_s']:.1f} |")
    gap = rows["reference"][0]["val_loss"] - rows["ours"][0]["val_loss"]
    print(f"\nOurs is {gap:.4f} nats lower (target >= 0.15).")
    return {"rows": rows, "gap": gap}


# ----------------------------------------------------------------------------- ablations


def variants(base_steps: dict, changes: dict = CHANGES) -> list[dict]:
    """The ablation runs: gpt, gpt + each change, gpt-speedrun, gpt-speedrun - each change."""
    out = [{"name": "gpt (nanoGPT's recipe)", "model": "gpt", "overrides": {}, "steps": base_steps["gpt"]},
           {"name": "gpt-speedrun (the recipe)", "model": "gpt-speedrun", "overrides": {},
            "steps": base_steps["gpt-speedrun"]}]
    for change, (add, remove) in changes.items():
        out.append({"name": f"gpt + {change}", "model": "gpt", "overrides": add, "steps": base_steps["gpt"]})
        out.append({"name": f"gpt-speedrun - {change}", "model": "gpt-speedrun", "overrides": remove,
                    "steps": base_steps["gpt-speedrun"]})
    return out


def _worker(task: str, variant: dict, seed: int = 0) -> dict:
    spec = json.dumps({**variant, "seed": seed})
    out = subprocess.run([sys.executable, "-m", "benchmarks.speedrun", task, spec], check=True, cwd=machine.ROOT,
                         capture_output=True, text=True, env=process_env("jax", {"JAX_COMPILATION_CACHE_DIR": ""}))
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepared(s: dict, **more):
    from makemore_jax import models
    from makemore_jax.runbuild import new_run, prepare
    warmup = {**models.get(s["model"]).train_defaults, **s["overrides"]}.get("warmup_steps", 0)
    overrides = {"warmup_steps": min(warmup, s["steps"]), **s["overrides"], "steps": s["steps"], **more}
    p = prepare(s["model"], data=gpt.CORPUS, overrides=overrides)
    return new_run(p, s.get("seed", 0))


def _trace_main(spec: str) -> None:
    """Worker: train one variant, the exact val loss every EVAL_EVERY steps: prints {"trace": [[step, val], ...]}."""
    from makemore_jax.evaluate import kind_loss
    from makemore_jax.fitrun import fit_run
    from makemore_jax.loop import Call
    s = json.loads(spec)
    run = _prepared(s, chunk_size=min(EVAL_EVERY[s["model"]], s["steps"]), eval_train=False)
    trace = []
    record = lambda ts: trace.append(  # noqa: E731
        (int(ts.step), kind_loss(run.model, run.config, ts.params, ts.model_state, run.splits["val"])))
    fit_run(run, None, quiet=True, resume=False, callbacks=[Call(record)])
    print(json.dumps({"trace": trace}))


def _speed_main(spec: str) -> None:
    """Worker: steps/s of one variant's training after its compile (a short run): prints {"steps_per_s": ...}."""
    from makemore_jax.fitrun import fit_run
    run = _prepared({**json.loads(spec), "steps": SPEED_STEPS}, chunk_size=SPEED_STEPS // 2)
    fit_run(run, None, quiet=True, resume=False)
    s = run.summary
    print(json.dumps({"steps_per_s": s["steps"] / (s["seconds"] - s["compile_seconds"])}))


SPEED_STEPS = 80


def _speed_key(v: dict) -> str:
    from makemore_jax import models
    model = models.get(v["model"])
    merged = {**model.config_defaults, **model.train_defaults, **v["overrides"]}
    return json.dumps({k: merged.get(k) for k in SPEED_FIELDS}, sort_keys=True)


def ablations(target: float, fixed_s: float, base_steps: dict, parallel: int = 2, changes: dict = CHANGES) -> list[dict]:
    """Every variant's val trace (`parallel` at a time), then each distinct speed on its own, then the table."""
    vs = variants(base_steps, changes)
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        traces = list(pool.map(lambda v: _worker("trace", v)["trace"], vs))
    speeds = {}
    for v in vs:  # one at a time: these are timings
        key = _speed_key(v)
        if key not in speeds:
            speeds[key] = _worker("speed", v)["steps_per_s"]
    rows = []
    print(f"| run | steps | val at the last step | steps/s | first step <= {target:.4f} | time to target s |")
    print("|---|---:|---:|---:|---:|---:|")
    for v, trace in zip(vs, traces):
        sps = speeds[_speed_key(v)]
        hit = next((step for step, val in trace if val <= target), None)
        seconds = None if hit is None else fixed_s + hit / sps
        rows.append({**v, "trace": trace, "steps_per_s": sps, "steps_to_target": hit, "time_to_target_s": seconds})
        print(f"| {v['name']} | {v['steps']:,} | {trace[-1][1]:.4f} | {sps:.1f} | {hit or 'not reached'} | "
              f"{'—' if seconds is None else f'{seconds:.1f}'} |")
    return rows


def main(quick: bool = False, mode: str | None = None, argv: list[str] | None = None) -> dict:
    """The race (default), `--budget`, or `--ablations` (with the target and fixed cost of the race saved in
    BENCH_OUT/speedrun.json, else the recorded ones). mode "toy": a few steps each, one seed, two changes."""
    argv, toy = list(argv or ()), mode == "toy"
    out = os.environ.get("BENCH_OUT", os.path.join("out", "bench"))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "speedrun.json")
    with open(path) if os.path.isfile(path) else contextlib.nullcontext() as f:
        saved = json.load(f) if f else {}
    if "--budget" in argv:
        saved["budget"] = budget({"ours": 6, "reference": 6} if toy else BUDGET_STEPS)
    elif "--ablations" in argv:
        race_ = saved.get("race") or RECORDED_RACE
        steps = {"gpt": 6, "gpt-speedrun": 6} if toy else {"gpt": gpt.recipe()["steps"], "gpt-speedrun": _recipe_steps()}
        ours_sps = _worker("speed", variants(steps)[1])["steps_per_s"]
        fixed = race_["median_wall_s"]["ours"] - steps["gpt-speedrun"] / ours_sps
        changes = dict(list(CHANGES.items())[:2]) if toy else CHANGES
        saved["ablations"] = ablations(race_["target"], fixed, steps, changes=changes)
    else:
        saved["race"] = race(seeds=(0,), steps=6) if toy else race()
    from makemore_jax.checkpoint import atomic_write
    atomic_write(path, json.dumps(saved, indent=1).encode())
    print(f"\nwrote {path}")
    return saved


def _recipe_steps() -> int:
    from makemore_jax.models.speedrun import SPEEDRUN_TRAIN
    return SPEEDRUN_TRAIN["steps"]


RECORDED_RACE = {"target": 1.9628, "median_wall_s": {"ours": 18.6}}  # benchmarks/RESULTS.md, "Speedrun"

if __name__ == "__main__":
    {"trace": _trace_main, "speed": _speed_main}[sys.argv[1]](sys.argv[2])
