"""Many runs at once: a hyperparameter sweep trained as one fused program.

Every combination of the swept values is one run. The runs' TrainStates are stacked along
a leading run axis and `jax.vmap` maps the engine's own fused chunk (train.make_train_chunk)
over them, with each run's learning rate, weight decay and model config as batched inputs;
the run axis is sharded over the devices (parallel.RUNS), so on a CPU split into host
devices each core trains its share of the runs. A swept run's numbers are those of the same
run trained alone with `train` (same seed, same minibatches), up to float32 rounding.

Swept: the learning rate, the weight decay, the seed, and any model config field that leaves
the parameter shapes unchanged (e.g. the MLP's `init`). Shapes cannot be swept: the runs of
one program share them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import parallel
from . import loop
from .checkpoint import dumps_json
from .models import Model, Penalty
from .train import (TrainConfig, TrainState, check_batch_size, check_grad_accum, create_train_state, make_optimizer,
                    make_train_chunk, make_train_step, step_rows)

TRAIN_FIELDS = ("lr", "weight_decay")  # TrainConfig fields a sweep can vary (traced inside the program)


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its seed, optimiser values and model config."""

    seed: int
    config: Any  # the model's config dataclass, swept fields set
    train_config: TrainConfig  # lr and weight_decay set
    swept: tuple[tuple[str, Any], ...]  # (name, value) of each swept field but the seed

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in (*self.swept, ("seed", self.seed)))

    @property
    def dirname(self) -> str:
        return "_".join(f"{k}-{v}" for k, v in (*self.swept, ("seed", self.seed))).replace("/", "-")


def grid(model: Model, config, tc: TrainConfig, values: Mapping[str, Sequence], seeds: Sequence[int]) -> list[SweepRun]:
    """Every combination of the swept values (the seed varies fastest).

    Args:
        model, config, tc: the base run (config includes vocab_size).
        values: field name -> values, for "lr", "weight_decay" and model config fields.
        seeds: one run per seed for each combination.
    Raises:
        ValueError: an unknown field, an invalid value, or a field that changes parameter shapes.
    """
    for name in values:
        if name not in TRAIN_FIELDS and name not in model.config_fields:
            raise ValueError(f"cannot sweep {name!r} for --model {model.name}")
    names = list(values)
    runs = []
    for combo in itertools.product(*(values[n] for n in names)):
        swept = tuple(zip(names, combo))
        train_over = {k: v for k, v in swept if k in TRAIN_FIELDS}
        run_config = dataclasses.replace(config, **{k: v for k, v in swept if k not in TRAIN_FIELDS})
        run_tc = dataclasses.replace(tc, **train_over)
        runs.extend(SweepRun(int(seed), run_config, run_tc, swept) for seed in seeds)
    if not runs:
        raise ValueError("the sweep has no runs")
    shapes = {_param_shapes(model, c) for c in dict.fromkeys(r.config for r in runs)}
    if len(shapes) > 1:
        changed = [n for n in names if n not in TRAIN_FIELDS and len({v for v in values[n]}) > 1]
        raise ValueError(f"sweeping {', '.join(changed)} changes the parameter shapes: sweep it in separate commands")
    return runs


def _param_shapes(model: Model, config) -> str:
    shapes = jax.eval_shape(lambda key: model.init(key, config), jax.random.key(0))
    return str(jax.tree.map(lambda s: (s.shape, str(s.dtype)), shapes))


# ----------------------------------------------------------------------------- the program


def init_states(model: Model, runs: Sequence[SweepRun]) -> TrainState:
    """Each run's fresh TrainState (as `train` makes it), stacked along a leading run axis."""
    states = [create_train_state(model, r.config, r.train_config, jax.random.key(r.seed)) for r in runs]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def unstack(stacked: TrainState, i: int) -> TrainState:
    """Run i's TrainState, on one device."""
    return parallel.local_copy(jax.tree.map(lambda x: x[i], stacked))


def make_sweep_chunk(model: Model, runs: Sequence[SweepRun], n_steps: int, mesh) -> Callable:
    """Jitted chunk(ts [R], lr [R], weight_decay [R], config_index [R], X, Y) -> (ts, losses [R, n_steps]).

    The engine's chunk of one run, vmapped over the runs; the run axis is sharded over the
    mesh, X and Y are replicated.
    """
    configs = list(dict.fromkeys(r.config for r in runs))  # distinct configs, in order
    tc = runs[0].train_config  # all but lr and weight_decay are shared
    penalty = model.ability(Penalty)

    def one_run(ts, lr, weight_decay, config_index, X, Y):
        run_model = model
        if penalty and len(configs) > 1:  # the swept config reaches the loss only here
            branches = [lambda p, c=c: penalty.penalty(p, c) for c in configs]
            run_model = model.with_ability(Penalty(lambda p, _: jax.lax.switch(config_index, branches, p)))
        tx = make_optimizer(tc, run_model.param_labels, lr=lr, weight_decay=weight_decay)
        step = make_train_step(run_model, configs[0], tx, grad_accum=tc.grad_accum)
        batch = functools.partial(model.kind.batch, block_size=configs[0].block_size)  # shapes are not swept
        return make_train_chunk(step, n_steps, step_rows(tc), batch=batch)(ts, X, Y)

    by_run = NamedSharding(mesh, P(parallel.RUNS))
    replicated = NamedSharding(mesh, P())
    return jax.jit(jax.vmap(one_run, in_axes=(0, 0, 0, 0, None, None)),
                   in_shardings=(by_run, by_run, by_run, by_run, replicated, replicated),
                   out_shardings=(by_run, by_run))


@dataclasses.dataclass
class SweepResult:
    """What a sweep leaves: the final states and each run's loss curve."""

    runs: list[SweepRun]
    states: TrainState  # stacked, run axis first
    steps: np.ndarray  # int [K]: the step at the end of each chunk
    curves: np.ndarray  # float [R, K]: each run's mean training loss over each chunk
    diverged: list[int | None]  # per run: the first step that diverged (loop.Divergence, as `train`), or None
    seconds: float
    compile_seconds: float
    devices: int


def train_sweep(model: Model, runs: Sequence[SweepRun], X: np.ndarray, Y: np.ndarray, *,
                devices: int | None = None, quiet: bool = False, callbacks: Sequence = ()) -> SweepResult:
    """Train every run of the sweep at once, `runs[0].train_config.steps` steps each.

    Args:
        X, Y: the training split, int32 [N, ...], shared by every run.
        devices: shard the runs over this many devices (None: all visible). The run count
            is padded with copies of run 0 to a multiple of it; the copies are dropped.
        quiet: no progress lines.
        callbacks: more loop.py callbacks (they see losses [R, n]).
    Returns:
        a SweepResult. A run that diverges by `train`'s rule (a loss NaN/inf or above
        DIVERGENCE_FACTOR x its first) is marked diverged; the others go on.
    """
    runs = list(runs)
    tc = runs[0].train_config
    check_batch_size(tc.batch_size, len(X))
    check_grad_accum(tc, len(X))
    mesh = parallel.mesh_over(min(devices or len(jax.devices()), len(runs)), parallel.RUNS)
    padded = runs + [runs[0]] * (-len(runs) % mesh.size)
    configs = list(dict.fromkeys(r.config for r in runs))
    hyper = (np.array([r.train_config.lr for r in padded], np.float32),
             np.array([r.train_config.weight_decay for r in padded], np.float32),
             np.array([configs.index(r.config) for r in padded], np.int32))
    ts, hyper = jax.device_put((init_states(model, padded), hyper), NamedSharding(mesh, P(parallel.RUNS)))
    X, Y = parallel.replicate((X, Y), mesh)

    def compile_chunk(n: int):
        compiled = make_sweep_chunk(model, padded, n, mesh).lower(ts, *hyper, X, Y).compile()
        return lambda state: compiled(state, *hyper, X, Y)

    curves = Curves(len(runs))
    line = lambda step, losses, elapsed: _progress(step, tc.steps, losses.mean(axis=1), runs, mesh.size,  # noqa: E731
                                                   elapsed)
    result = loop.run_chunks(compile_chunk, ts, start=0, total=tc.steps, chunk_size=tc.chunk_size,
                             divergence=loop.Divergence(configs[0].vocab_size), on_diverged=curves.mark,
                             callbacks=[curves, loop.Progress(tc.steps, 0, quiet=quiet, line=line, bar=False),
                                        *callbacks],
                             host=lambda losses: np.asarray(losses)[: len(runs)])  # [R, n]: padding dropped
    return SweepResult(runs, result.state, np.array(curves.steps), np.stack(curves.means, axis=1), curves.diverged,
                       result.seconds, result.compile_seconds, mesh.size)


class Curves:
    """A loop callback: each run's mean loss per chunk, and the first step where each run diverged."""

    def __init__(self, n_runs: int):
        self.steps, self.means, self.diverged = [], [], [None] * n_runs

    def mark(self, first: int, bad: np.ndarray, before, losses) -> None:
        """loop.run_chunks' on_diverged: note each newly diverged run, and go on."""
        for i in np.flatnonzero(bad >= 0):
            if self.diverged[i] is None:
                self.diverged[i] = first + int(bad[i])

    def on_chunk(self, state, step: int, losses: np.ndarray, elapsed: float):
        self.steps.append(step)
        self.means.append(losses.mean(axis=1))


def _progress(step: int, total: int, chunk_losses: np.ndarray, runs, n_dev: int, elapsed: float) -> str:
    finite = np.where(np.isfinite(chunk_losses), chunk_losses, np.inf)
    best = int(np.argmin(finite))
    return (f"step {step:,}/{total:,}  {len(runs)} runs on {n_dev} device(s)  best loss {chunk_losses[best]:.4f} "
            f"({runs[best].label})  {len(runs) * step / elapsed:,.0f} steps/s over all runs")


# ----------------------------------------------------------------------------- results


def summarize(runs: Sequence[SweepRun], losses: Sequence[Mapping[str, float]], *,
              select: str = "dev") -> tuple[list[dict], list[dict]]:
    """Per run and per configuration (the runs that differ only in seed) results, best first.

    Args:
        losses: per run {"train": loss, "dev": loss} (NaN for a diverged run).
        select: the split the runs are chosen on, "dev" (running text: "val"), named so in the rows.
    Returns:
        (runs: [{"label", "seed", <swept>, "train", "dev"}],
         configs: [{"label", <swept>, "seeds", "train_mean", "train_sd", "dev_mean", "dev_sd"}]),
        each sorted by dev loss (the split the runs are chosen on); sd is the sample sd (0 for one seed).
    """
    run_rows = [{"label": r.label, "seed": r.seed, **dict(r.swept), **losses[i]} for i, r in enumerate(runs)]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(r.swept, []).append(i)
    config_rows = []
    for swept, members in groups.items():
        row = {"label": " ".join(f"{k}={v}" for k, v in swept) or "(base)", **dict(swept), "seeds": len(members)}
        for split in ("train", select):
            values = np.array([losses[i][split] for i in members], dtype=np.float64)
            with np.errstate(invalid="ignore"):  # a diverged run: inf or NaN, shown as such
                row[f"{split}_mean"] = float(values.mean())
                row[f"{split}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        config_rows.append(row)
    by = lambda row: _by_split(row, select)  # noqa: E731
    return sorted(run_rows, key=by), sorted(config_rows, key=by)


def _by_split(row: dict, select: str) -> tuple[bool, float]:
    """Sort key: lowest loss on `select` first, NaN last."""
    loss = row[select] if select in row else row[f"{select}_mean"]
    return math.isnan(loss), loss


def markdown(run_rows: list[dict], config_rows: list[dict], *, select: str = "dev") -> str:
    """The two tables of `summarize` as Markdown."""
    d = select
    lines = [f"| configuration | seeds | train (mean ± sd) | {d} (mean ± sd) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['label']} | {r['seeds']} | {r['train_mean']:.4f} ± {r['train_sd']:.4f} | "
              f"{r[f'{d}_mean']:.4f} ± {r[f'{d}_sd']:.4f} |" for r in config_rows]
    lines += ["", f"| run | train | {d} |", "|---|---:|---:|"]
    lines += [f"| {r['label']} | {r['train']:.4f} | {r[d]:.4f} |" for r in run_rows]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str, result: SweepResult, losses: Sequence[Mapping[str, float]], *,
                 title: str = "sweep", select: str = "dev") -> list[str]:
    """sweep.md and sweep.json (the tables of `summarize`, the loss curves) and, with
    matplotlib, sweep.png (every run's loss curve); returns the paths written."""
    from .checkpoint import atomic_write
    run_rows, config_rows = summarize(result.runs, losses, select=select)
    for row in run_rows:
        row["diverged_at"] = result.diverged[[r.label for r in result.runs].index(row["label"])]
    paths = [os.path.join(out_dir, "sweep.md"), os.path.join(out_dir, "sweep.json")]
    atomic_write(paths[0], f"# {title}\n\n{markdown(run_rows, config_rows, select=select)}".encode())
    report = {"title": title, "configs": config_rows, "runs": run_rows, "steps": result.steps.tolist(),
              "curves": {r.label: c.tolist() for r, c in zip(result.runs, result.curves)},
              "seconds": result.seconds, "compile_seconds": result.compile_seconds, "devices": result.devices}
    atomic_write(paths[1], dumps_json(report, indent=1).encode())
    try:
        from .plots import plot_sweep
    except ImportError as e:
        if getattr(e, "name", None) != "matplotlib":
            raise
    else:
        paths.append(plot_sweep(result.steps, result.curves, [r.label for r in result.runs],
                                os.path.join(out_dir, "sweep.png")))
    return paths
