"""Loss curves of sequence_reproduce runs: train (per logged chunk) and dev loss against the step.

    python -m benchmarks.sequence_curves OUT.png RUN_DIR [RUN_DIR ...]

One panel per model (read from each run's result.json, or the folder name), one colour per
run; solid lines are the minibatch training loss averaged over each logged chunk, dashed
lines the dev loss.
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _read(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> None:
    out, *runs = argv if argv is not None else sys.argv[1:]
    by_model: dict[str, list[str]] = {}
    for run in runs:
        name = os.path.basename(os.path.normpath(run))
        by_model.setdefault(name.split("-")[1] if name.count("-") >= 2 else name, []).append(run)
    fig, axes = plt.subplots(1, len(by_model), figsize=(5.5 * len(by_model), 4), squeeze=False)
    for ax, (model, model_runs) in zip(axes[0], sorted(by_model.items())):
        for i, run in enumerate(sorted(model_runs)):
            label = os.path.basename(os.path.normpath(run))
            train, dev = _read(os.path.join(run, "log.jsonl")), _read(os.path.join(run, "dev.jsonl"))
            colour = f"C{i}"
            ax.plot([r["step"] for r in train], [r["loss"] for r in train], color=colour, label=f"{label} train")
            ax.plot([r["step"] for r in dev], [r["dev"] for r in dev], "--", color=colour, label=f"{label} dev")
        ax.set(title=model, xlabel="step", ylabel="loss (nats)", ylim=(1.9, 2.6))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
