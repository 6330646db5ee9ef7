"""Which tokens suit `gpt` on the bundled corpus at equal wall time: char, BPE of a few sizes, GPT-2's.

    python -m benchmarks.tokens                       # 120 s of training each, the five tokenizers
    python -m benchmarks.tokens --seconds 5 --out out/tokens.md   # a smoke run

Each tokenizer trains `gpt` (its default recipe: 4 blocks, n_embd 128, block 64, batch 12,
AdamW with warmup and a cosine to the last step) in a process of its own, so no compiled
program, cache or memory is shared. The process first trains the tokenizer where one is
asked for (bpe:N on the training split, the first 90%), times a short probe run to learn its
steps per second, then trains for as many steps as fill the budget (compiling excluded), so
every cosine schedule ends where it should. It reports the val split's exact loss in nats per
token and in bits per UTF-8 byte (the number that compares across tokenizers), the steps, the
training seconds and the parameters; the embedding and the tied head grow with the
vocabulary (GPT-2's 50,257 x 128), so bigger vocabularies buy fewer steps.

Uses the public API only (train_model, tokens.token_vocab, Run.bits_per_byte); not part of
the suite (`python -m benchmarks`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TOKENIZERS = ("char", "bpe:512", "bpe:1024", "bpe:4096", "gpt2")
PROBE_STEPS = 30  # steps of the timing run, in chunks of PROBE_CHUNK (the first chunk compiles)
PROBE_CHUNK = 10
WARMUP_STEPS = 100  # gpt's; shortened for budgets too small for it


def measure(setting: str, seconds: float, data: str | None) -> dict:
    """One tokenizer's row: train gpt on its tokens for about `seconds` of training (in this process)."""
    import jax

    from makemore_jax import data as data_module
    from makemore_jax import text, tokens
    from makemore_jax.lifecycle import train_model

    path = data or data_module.DEFAULT_TEXT
    t0 = time.perf_counter()
    corpus = text.read_text(path).items
    vocab = setting if setting == tokens.CHAR else tokens.token_vocab(setting, text.split_text(corpus)[0])
    tokenizer_seconds = time.perf_counter() - t0

    probe = train_model("gpt", data=path, tokenizer=vocab, steps=PROBE_STEPS, chunk_size=PROBE_CHUNK,
                        warmup_steps=1, eval_train=False)
    timed = probe.summary["seconds"] - probe.summary["compile_seconds"]
    rate = probe.summary["steps"] / max(timed, 1e-9)
    steps = max(PROBE_STEPS, int(rate * seconds))
    run = train_model("gpt", data=path, tokenizer=vocab, steps=steps, eval_train=False,
                      warmup_steps=min(WARMUP_STEPS, max(1, steps // 10)))
    val = run.info["results"]["val_loss"]
    return {"tokenizer": setting, "vocab": run.vocab.size,
            "parameters": sum(x.size for x in jax.tree.leaves(run.state.params)),
            "steps": steps, "train_seconds": run.summary["seconds"] - run.summary["compile_seconds"],
            "compile_seconds": run.summary["compile_seconds"], "tokenizer_seconds": tokenizer_seconds,
            "val_tokens": len(run.splits["val"][1]), "val_nats_per_token": val,
            "val_bits_per_byte": run.bits_per_byte({"val": val})["val"]}


def markdown(rows: list[dict], seconds: float) -> str:
    best = min((r for r in rows if "error" not in r), key=lambda r: r["val_bits_per_byte"], default=None)
    lines = [f"gpt on the bundled corpus, about {seconds:g} s of training per tokenizer (compiling excluded), "
             "one process each; val split exact", "",
             "| tokenizer | vocab | parameters | steps | train s | val tokens | val nats/token | val bits/byte |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tokenizer']} | failed: {r['error']} | | | | | | |")
            continue
        mark = "**" if r is best else ""
        lines.append(f"| {r['tokenizer']} | {r['vocab']:,} | {r['parameters']:,} | {r['steps']:,} | "
                     f"{r['train_seconds']:.1f} | {r['val_tokens']:,} | {r['val_nats_per_token']:.4f} | "
                     f"{mark}{r['val_bits_per_byte']:.4f}{mark} |")
    return "\n".join(lines) + "\n"


def run_all(settings: list[str], seconds: float, data: str | None) -> list[dict]:
    """Each setting measured in a fresh `python -m benchmarks.tokens --one` process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for setting in settings:
        with tempfile.TemporaryDirectory() as tmp:
            result = os.path.join(tmp, "row.json")
            argv = [sys.executable, "-m", "benchmarks.tokens", "--one", setting, "--seconds", str(seconds),
                    "--json", result] + (["--data", data] if data else [])
            print(f"{setting}: training for about {seconds:g} s ...", file=sys.stderr, flush=True)
            proc = subprocess.run(argv, cwd=root, stderr=subprocess.PIPE, text=True)
            if proc.returncode or not os.path.exists(result):
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"tokenizer": setting, "error": tail[:200]})
                continue
            with open(result) as f:
                rows.append(json.load(f))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training seconds per tokenizer (default 120)")
    parser.add_argument("--tokenizers", default=",".join(TOKENIZERS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--data", default=None, help="running text (default: the bundled data/shakespeare.txt)")
    parser.add_argument("--out", default=os.path.join("out", "bench", "tokens.md"), help="the table (markdown)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: one tokenizer
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        row = measure(args.one, args.seconds, args.data)
        with open(args.json, "w") as f:
            json.dump(row, f)
        return 0
    rows = run_all(args.tokenizers.split(","), args.seconds, args.data)
    table = markdown(rows, args.seconds)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(table)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    print(table, end="")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
