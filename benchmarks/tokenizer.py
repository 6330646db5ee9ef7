"""BPE training and encoding on data/shakespeare.txt: ours against Hugging Face and minbpe-style Python.

    python -m benchmarks tokenizer [--quick]      # or: python -m benchmarks.tokenizer [--quick]

Training (GPT-2's split pattern, vocab 512 and 4096, the split included, each run a fresh worker):
ours (tokenizer/trainer.py, pure Python), Hugging Face `tokenizers` (Rust, every core; the `bench`
extra) and minbpe's loop (bpe.train_merges, a pass per merge), timed for SLOW_MERGES merges and
extrapolated to 256 (an upper bound by a few percent). Encoding: the hand-written encoder against
tiktoken, for the trained vocab 512 and GPT-2's ranks.
"""
import statistics
import sys
import time

from benchmarks.harness import markdown, one_call
from benchmarks.machine import ROOT

TEXT = f"{ROOT}/data/shakespeare.txt"
SLOW_MERGES = 8


def _timed(fn) -> dict:
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    t = time.perf_counter()
    fn(text)
    return {"seconds": time.perf_counter() - t}


def train(side: str, vocab_size: int) -> dict:
    """Worker call: {"seconds"} of one training (side "ours", "hf"; "slow": per merge of vocab_size - 256)."""
    if side == "ours":
        from makemore_jax import tokenizer
        return _timed(lambda text: tokenizer.train(text, vocab_size, pattern="gpt2", progress=False))
    if side == "slow":
        from makemore_jax.tokenizer import bpe, split
        merges = vocab_size - 256
        pattern = split.compile_pattern(split.GPT2_PATTERN)
        s = _timed(lambda text: bpe.train_merges([c.encode("utf-8") for c in split.chunks(text, pattern)], merges))
        return {"seconds": s["seconds"] / merges}
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def hf(text):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.train_from_iterator([text], trainer=trainers.BpeTrainer(
            vocab_size=vocab_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return _timed(hf)


def encode(which: str) -> dict:
    """Worker call: seconds of encoding the whole text by hand and by tiktoken, tokens, bytes per token."""
    from makemore_jax import tokenizer
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    tok = tokenizer.load("gpt2") if which == "gpt2" else tokenizer.train(text, 512, pattern="gpt2", progress=False)
    out = {}
    for side, fn in (("hand-written", tok.encode), ("tiktoken", tok.encode_fast)):
        fn("warm up")  # GPT-2's merges are recovered and tiktoken's Encoding built outside the timing
        t = time.perf_counter()
        ids = fn(text)
        out[side] = time.perf_counter() - t
    return {**out, "tokens": len(ids), "bytes_per_token": len(text.encode()) / len(ids)}


def main(mode: str = "full", argv=None) -> dict:
    short = mode != "full"
    repeats, rows = 1 if short else 3, {}
    time_of = lambda side, v: one_call("tokenizer", "benchmarks.tokenizer:train",  # noqa: E731
                                       {"side": side, "vocab_size": v})["seconds"]
    for v in (512,) if short else (512, 4096):
        ours, hf = (statistics.median(time_of(side, v) for _ in range(repeats)) for side in ("ours", "hf"))
        rows[v] = {"ours_s": ours, "hf_s": hf, "ours_over_hf": ours / hf}
    rows[512]["minbpe_style_s"] = time_of("slow", 256 + (2 if short else SLOW_MERGES)) * 256
    rows[512]["minbpe_style_over_ours"] = rows[512]["minbpe_style_s"] / rows[512]["ours_s"]
    enc = {which: one_call("tokenizer", "benchmarks.tokenizer:encode", {"which": which}) for which in ("bpe512", "gpt2")}
    print(f"Training on data/shakespeare.txt, GPT-2 split, median of {repeats}, seconds:\n")
    markdown("vocab | ours | Hugging Face tokenizers | ours / HF | minbpe-style Python (extrapolated) | speed-up", [
        [v, f"{r['ours_s']:.2f}", f"{r['hf_s']:.2f}", f"{r['ours_over_hf']:.2f}",
         *([f"{r['minbpe_style_s']:.1f}", f"{r['minbpe_style_over_ours']:.0f}x"] if "minbpe_style_s" in r else "--")]
        for v, r in rows.items()])
    print("\nEncoding the whole text, seconds:\n")
    markdown("ranks | tokens | bytes/token | hand-written | tiktoken", [
        [w, f"{e['tokens']:,}", f"{e['bytes_per_token']:.2f}", f"{e['hand-written']:.2f}", f"{e['tiktoken']:.3f}"]
        for w, e in enc.items()])
    return {"train": rows, "encode": enc, "repeats": repeats}


if __name__ == "__main__":
    main("quick" if "--quick" in sys.argv[1:] else "full")
