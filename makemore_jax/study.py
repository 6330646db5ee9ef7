"""The commands that study a model rather than train it for use: lr-find, diagnose, plot.

Like `train` and `sweep`, they build their run with runbuild.prepare, so their settings
are checked (and worded) the same way.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from . import checkpoint, models
from .commands import PROG, say
from .models import ClosedForm
from .settings import UsageError


def cmd_lr_find(args) -> None:
    import jax
    import numpy as np

    from .train import lr_find
    from .runbuild import prepare
    model = models.get(args.model)
    if model.ability(ClosedForm):
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no learning rate")
    p = prepare(model, data=args.data, overrides={"batch_size": args.batch_size})
    config, splits = p.config, p.splits
    say(args, f"sweeping lr over 1e-3..1 in {args.steps} steps ({model.name}, batch {args.batch_size})")
    lrs, losses = lr_find(model, config, *splits["train"], jax.random.key(args.seed),
                          batch_size=args.batch_size, steps=args.steps)
    smooth = np.convolve(losses, np.ones(25) / 25, mode="same") if len(losses) > 50 else losses
    best = float(lrs[int(np.nanargmin(smooth))])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lr_find.json")
    checkpoint.atomic_write(path, checkpoint.dumps_json({"lr": lrs.tolist(), "loss": losses.tolist()}).encode())
    written = [path]
    try:
        from .plots import plot_lr_find
        written.append(plot_lr_find(lrs, losses, os.path.join(args.out, "lr_find.png")))
    except ImportError:
        pass
    print(f"lowest smoothed loss at lr {best:.3g}; wrote {', '.join(written)}")


def cmd_plot(args) -> None:
    from .plots import plot_losses
    print(f"wrote {plot_losses(os.path.join(args.out, 'metrics.jsonl'), os.path.join(args.out, 'loss.png'))}")


def diagnosable() -> list[str]:
    from .diagnostics import supports
    return [name for name, model in models.REGISTRY.items() if supports(model)]


def mlp_inits() -> tuple[str, ...]:
    from .models.mlp import INITS
    return INITS


def cmd_diagnose(args) -> None:
    import jax

    from . import diagnostics
    from .train import Diverged, batch_indices, create_train_state, fit

    from .runbuild import prepare
    over = {"init": args.init} if args.init else {}
    if args.no_bn:
        over.update(norm="none", out_norm=False)
    p = prepare(args.model, data=args.data, overrides={**over, "steps": max(args.steps, 1),
                                                        "batch_size": args.batch_size, "lr": args.lr})
    model, config, tc = p.model, p.config, p.train_config
    Xtr, Ytr = p.splits["train"]
    ts = create_train_state(model, config, tc, jax.random.key(args.seed))
    updates = None
    if args.steps:
        say(args, f"training {model.name} ({config.init} init{', no BatchNorm' if args.no_bn else ''}) for "
                   f"{args.steps} steps, update ratios every {args.every}")
        try:
            ts, summary = fit(model, config, tc, Xtr, Ytr, ts, quiet=args.quiet,
                              metrics_fn=diagnostics.update_ratios, metrics_every=args.every)
            updates = summary["metrics"]
        except Diverged as e:
            print(f"{PROG}: {e}; diagnosing the last good state (step {int(e.last_good.step)})", file=sys.stderr)
            ts = e.last_good
    rows = jax.device_get(batch_indices(ts.key, ts.step[None], args.batch_size, len(Xtr))[0])  # the next step's batch
    snap = diagnostics.snapshot(ts.params, ts.model_state, Xtr[rows], Ytr[rows])
    table = diagnostics.table_rows(ts.params, snap, updates)
    print(f"{model.name}, {config.init} init, step {int(ts.step)}, minibatch loss {float(snap.loss):.4f}")
    print(diagnostics.format_table(table))

    os.makedirs(args.out, exist_ok=True)
    report = {"model": model.name, "config": dataclasses.asdict(config), "step": int(ts.step),
              "loss": float(snap.loss), "rows": table,
              "updates": {k: v.tolist() for k, v in (updates or {}).items()}}
    written = [os.path.join(args.out, "diagnostics.json")]
    checkpoint.atomic_write(written[0], checkpoint.dumps_json(report).encode())
    try:
        from .plots import plot_diagnostics
    except ImportError as e:
        if getattr(e, "name", None) != "matplotlib":
            raise
        print('figures need matplotlib: pip install "makemore-jax[plots]"')
    else:
        written += plot_diagnostics(jax.device_get(snap.acts), jax.device_get(snap.act_grads), updates, args.out)
    print(f"wrote {', '.join(written)}")
