"""BPE training and encoding on data/shakespeare.txt: ours against Hugging Face and minbpe-style Python.

    python -m benchmarks tokenizer [--quick]      # or: python -m benchmarks.tokenizer [--quick]

Training, GPT-2's split pattern, vocab 512 and 4096, each side in a fresh process, the
median of repeats, the regex split included in every time:

- ours: makemore_jax.tokenizer.train (tokenizer/trainer.py, pure Python);
- Hugging Face `tokenizers` (Rust): BpeTrainer on the byte-level pre-tokenizer, the same
  split; it uses every core it finds (the `bench` extra installs it);
- minbpe-style pure Python: tokenizer/bpe.train_merges, minbpe's loop (a pass over the
  whole text per merge), timed for SLOW_MERGES merges on the whole text and extrapolated
  linearly to 256 merges (vocab 512); each merge's pass shrinks a little as tokens join,
  so the extrapolation is an upper bound of a few percent.

Encoding the whole text: the hand-written encoder against tiktoken, for the trained vocab
512 and for GPT-2's ranks.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "data", "shakespeare.txt")
SLOW_MERGES = 8


def _text() -> str:
    with open(TEXT, encoding="utf-8") as f:
        return f.read()


def _train_ours(vocab_size: int) -> float:
    from makemore_jax import tokenizer
    text = _text()
    t = time.perf_counter()
    tokenizer.train(text, vocab_size, pattern="gpt2", progress=False)
    return time.perf_counter() - t


def _train_hf(vocab_size: int) -> float:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    text = _text()
    t = time.perf_counter()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer=trainer)
    return time.perf_counter() - t


def _train_slow(merges: int) -> float:
    """minbpe's loop for `merges` merges on the whole text, the time per merge."""
    from makemore_jax.tokenizer import bpe, split
    text = _text()
    t = time.perf_counter()
    chunks = [c.encode("utf-8") for c in split.chunks(text, split.compile_pattern(split.GPT2_PATTERN))]
    bpe.train_merges(chunks, merges)
    return (time.perf_counter() - t) / merges


def _encode(which: str) -> dict:
    from makemore_jax import tokenizer
    text = _text()
    tok = tokenizer.load("gpt2") if which == "gpt2" else tokenizer.train(text, 512, pattern="gpt2", progress=False)
    out = {}
    for side, encode in (("hand-written", tok.encode), ("tiktoken", tok.encode_fast)):
        encode("warm up")  # GPT-2's merges are recovered and tiktoken's Encoding built outside the timing
        t = time.perf_counter()
        ids = encode(text)
        out[side] = time.perf_counter() - t
    out["tokens"], out["bytes_per_token"] = len(ids), len(text.encode()) / len(ids)
    return out


WORKERS = {"ours": _train_ours, "hf": _train_hf, "slow": _train_slow, "encode": _encode}


def _in_process(worker: str, arg) -> object:
    """Run one worker in a fresh Python process and return its JSON answer."""
    code = f"import json, benchmarks.tokenizer as b; print(json.dumps(b.WORKERS[{worker!r}]({arg!r})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(quick: bool = False, mode: str | None = None, argv=None) -> dict:
    repeats = 1 if quick or mode == "toy" else 3
    vocab_sizes = (512,) if quick or mode == "toy" else (512, 4096)
    rows = {}
    for vocab_size in vocab_sizes:
        ours = statistics.median(_in_process("ours", vocab_size) for _ in range(repeats))
        hf = statistics.median(_in_process("hf", vocab_size) for _ in range(repeats))
        rows[vocab_size] = {"ours_s": ours, "hf_s": hf, "ours_over_hf": ours / hf}
    per_merge = _in_process("slow", 2 if quick or mode == "toy" else SLOW_MERGES)
    rows[512]["minbpe_style_s"] = per_merge * 256
    rows[512]["minbpe_style_over_ours"] = per_merge * 256 / rows[512]["ours_s"]
    encode = {which: _in_process("encode", which) for which in ("bpe512", "gpt2")}
    _print(rows, encode, repeats)
    return {"train": rows, "encode": encode, "repeats": repeats}


def _print(rows: dict, encode: dict, repeats: int) -> None:
    print(f"Training on data/shakespeare.txt, GPT-2 split, median of {repeats}, seconds:\n")
    print("| vocab | ours | Hugging Face tokenizers | ours / HF | minbpe-style Python (extrapolated) | speed-up |")
    print("|---|---|---|---|---|---|")
    for vocab_size, r in rows.items():
        slow = (f"{r['minbpe_style_s']:.1f} | {r['minbpe_style_over_ours']:.0f}x" if "minbpe_style_s" in r
                else "- | -")
        print(f"| {vocab_size} | {r['ours_s']:.2f} | {r['hf_s']:.2f} | {r['ours_over_hf']:.2f} | {slow} |")
    print("\nEncoding the whole text, seconds:\n")
    print("| ranks | tokens | bytes/token | hand-written | tiktoken |")
    print("|---|---|---|---|---|")
    for which, e in encode.items():
        print(f"| {which} | {e['tokens']:,} | {e['bytes_per_token']:.2f} | {e['hand-written']:.2f} | "
              f"{e['tiktoken']:.3f} |")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
