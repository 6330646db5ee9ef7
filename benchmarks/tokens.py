"""Which tokens suit `gpt` on the bundled corpus at equal wall time: char, BPE of a few sizes, GPT-2's.

    python -m benchmarks.tokens                       # 120 s of training each, the five tokenizers
    python -m benchmarks.tokens --seconds 5 --out out/tokens.md   # a smoke run

Each tokenizer trains `gpt` (its recipe) in a fresh worker: the tokenizer first (bpe:N on the
training split), a short probe run for its steps/s, then as many steps as fill the budget (compile
excluded). Reports the exact val loss in nats/token and bits per UTF-8 byte (the number that
compares across tokenizers). Public API only; not part of the suite.
"""

import argparse
import json
import os
import sys
import time

from benchmarks.harness import WorkerError, one_call

TOKENIZERS = ("char", "bpe:512", "bpe:1024", "bpe:4096", "gpt2")
PROBE_STEPS = 30  # steps of the timing run, in chunks of PROBE_CHUNK (the first chunk compiles)
PROBE_CHUNK = 10
WARMUP_STEPS = 100  # gpt's; shortened for budgets too small for it


def measure(setting: str, seconds: float, data: str | None) -> dict:
    """Worker call: one tokenizer's row, gpt trained on its tokens for about `seconds`."""
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
    """Each setting measured in a fresh worker (XLA on its own threads, as a standalone script)."""
    rows = []
    for setting in settings:
        print(f"{setting}: training for about {seconds:g} s ...", file=sys.stderr, flush=True)
        try:
            rows.append(one_call("jax-xla-threads", "benchmarks.tokens:measure",
                                 {"setting": setting, "seconds": seconds, "data": data}))
        except WorkerError as e:
            rows.append({"tokenizer": setting, "error": str(e).strip().splitlines()[-1][:200]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training seconds per tokenizer (default 120)")
    parser.add_argument("--tokenizers", default=",".join(TOKENIZERS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--data", default=None, help="running text (default: the bundled data/shakespeare.txt)")
    parser.add_argument("--out", default=os.path.join("out", "bench", "tokens.md"), help="the table (markdown)")
    args = parser.parse_args(argv)
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
