"""PyTorch references for the transformer: makemore's model trained two ways, and two samplers.

Training loops (`loops`, the benchmark interface):
  - "lecture eager": makemore.py's Transformer as written there (explicit attention with a
    masked_fill'ed causal mask, NewGELU written out, nn.Linear / nn.Embedding / nn.LayerNorm
    modules) and its optimizer: torch.optim.AdamW(lr 5e-4, betas 0.9/0.99, weight decay
    0.01, eps 1e-8), batch 32 drawn with torch.randint.
  - "torch.nn + torch.optim": what a PyTorch user would write today: the same model with
    F.scaled_dot_product_attention(is_causal=True), the tanh GELU from F.gelu, and
    AdamW(fused=True) ("SDPA + fused AdamW").
  - "torch.compile": that model through torch.compile (default mode); its first call compiles.
`split_loss` is the evaluation benchmark's PyTorch column.

torch is not a project dependency: it comes from the optional ``bench`` extra (install the CPU
build: ``pip install torch==2.13.0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F


class _Attention(tnn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, sdpa: bool):
        super().__init__()
        self.c_attn = tnn.Linear(n_embd, 3 * n_embd)
        self.c_proj = tnn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
        self.n_head, self.sdpa = n_head, sdpa

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def _new_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _Block(tnn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, sdpa: bool):
        super().__init__()
        self.ln_1, self.ln_2 = tnn.LayerNorm(n_embd), tnn.LayerNorm(n_embd)
        self.attn = _Attention(n_embd, n_head, block_size, sdpa)
        self.c_fc, self.c_proj = tnn.Linear(n_embd, 4 * n_embd), tnn.Linear(4 * n_embd, n_embd)
        self.act = (lambda x: F.gelu(x, approximate="tanh")) if sdpa else _new_gelu

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.act(self.c_fc(self.ln_2(x))))


class Transformer(tnn.Module):
    """makemore's Transformer (GPT-2 layout); `sdpa` swaps in the fused attention and GELU."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 64,
                 sdpa: bool = False):
        super().__init__()
        self.wte, self.wpe = tnn.Embedding(vocab_size, n_embd), tnn.Embedding(block_size, n_embd)
        self.h = tnn.ModuleList([_Block(n_embd, n_head, block_size, sdpa) for _ in range(n_layer)])
        self.ln_f = tnn.LayerNorm(n_embd)
        self.lm_head = tnn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx):
        t = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device).unsqueeze(0))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def make_model(config, *, sdpa: bool = False, seed: int = 0, init: str = "pytorch") -> Transformer:
    """makemore's Transformer; init "pytorch" leaves torch's layer defaults (makemore.py's later
    version), "gpt2" is N(0, 0.02) weights and zero biases (its first version, minGPT)."""
    torch.manual_seed(seed)
    model = Transformer(config.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd, sdpa=sdpa)
    if init == "gpt2":
        for m in model.modules():
            if isinstance(m, (tnn.Linear, tnn.Embedding)):
                tnn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, tnn.Linear) and m.bias is not None:
                tnn.init.zeros_(m.bias)
    return model


def sequence_loop(model: tnn.Module, X: torch.Tensor, Y: torch.Tensor, *, batch_size: int, seed: int,
                  compiled: bool = False, **adamw) -> Callable[[int], float]:
    """run(n) -> last minibatch loss: n AdamW(**adamw) steps of `model` on rows drawn with torch.randint.

    X, Y: int64 [N, T] sequences and targets; the loss ignores targets -1 (makemore's loop).
    `compiled` runs the model through torch.compile (its first call compiles).
    """
    opt = torch.optim.AdamW(model.parameters(), **adamw)
    forward = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(seed)

    def run(n: int) -> float:
        for _ in range(n):
            ix = torch.randint(0, X.shape[0], (batch_size,), generator=g)
            logits = forward(X[ix])
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), Y[ix].view(-1), ignore_index=-1)
            model.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return loss.item()

    return run


@torch.no_grad()
def sequence_loss(model: tnn.Module, X: torch.Tensor, Y: torch.Tensor, *, chunk: int = 2000) -> float:
    """Mean cross-entropy over every target of (X, Y) (-1 ignored), in eval mode, `chunk` rows at a time."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(X), chunk):
        logits, y = model(X[i:i + chunk]), Y[i:i + chunk]
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1,
                                 reduction="sum").item()
        count += int((y >= 0).sum())
    model.train(was_training)
    return total / count


MAKEMORE_ADAMW = {"lr": 5e-4, "betas": (0.9, 0.99), "weight_decay": 0.01, "eps": 1e-8}  # makemore.py's optimizer


def as_long_tensors(X: np.ndarray, Y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """numpy int arrays -> int64 tensors (sharing memory where the dtype already is int64)."""
    return torch.from_numpy(np.asarray(X, np.int64)), torch.from_numpy(np.asarray(Y, np.int64))


def train_makemore(arrays: dict, config, *, steps: int, eval_every: int, seed: int = 3407, init: str = "pytorch",
                   on_eval: Callable[[int, dict], None] | None = None) -> dict:
    """makemore.py's own training loop on the given split, selecting on dev.

    AdamW(lr 5e-4, betas 0.9/0.99, weight decay 0.01, eps 1e-8) on every parameter, batch 32
    drawn with replacement, no clipping, as makemore.py; every `eval_every` steps (steps are
    rounded down to a multiple of it) the exact mean loss of every split goes to
    on_eval(step, losses).

    Args:
        arrays: {"train" | "dev" | "test": (X, Y)} int [N, block_size] (targets -1 ignored).
    Returns:
        {"best_step", "losses_at_best_dev": {split: loss}, "curve": [(step, {split: loss})], "steps_per_s"}.
    """
    import time
    torch.manual_seed(seed)
    model = make_model(config, seed=seed, init=init)
    tensors = {k: as_long_tensors(X, Y) for k, (X, Y) in arrays.items()}
    train = sequence_loop(model, *tensors["train"], batch_size=32, seed=seed, **MAKEMORE_ADAMW)
    curve, best, train_time = [], None, 0.0
    for step in range(eval_every, steps + 1, eval_every):
        t0 = time.perf_counter()
        train(eval_every)
        train_time += time.perf_counter() - t0
        losses = {k: sequence_loss(model, *v) for k, v in tensors.items()}
        curve.append((step, losses))
        if best is None or losses["dev"] < best[1]["dev"]:
            best = (step, losses)
        if on_eval is not None:
            on_eval(step, losses)
    return {"best_step": best[0], "losses_at_best_dev": best[1], "curve": curve,
            "steps_per_s": len(curve) * eval_every / train_time}


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32, seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last minibatch loss}: n AdamW steps of makemore's recipe each call.

    Args:
        X, Y: int [N, block_size] sequences and targets (-1 ignored), as build_sequence_dataset.
        config: the JAX transformer's Config (vocab_size, block_size, n_layer, n_head, n_embd).
    """
    Xt, Yt = as_long_tensors(X, Y)

    def make(sdpa: bool, compiled: bool = False) -> Callable[[int], float]:
        return sequence_loop(make_model(config, sdpa=sdpa, seed=seed), Xt, Yt, batch_size=batch_size, seed=seed,
                             compiled=compiled, **MAKEMORE_ADAMW, **({"fused": True} if sdpa else {}))

    return {"lecture eager": make(False), "torch.nn + torch.optim": make(True),
            "torch.compile": make(True, compiled=True)}


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call, eval mode."""
    model = make_model(config, sdpa=True).eval()
    X, Y = as_long_tensors(X, Y)
    return lambda: sequence_loss(model, X, Y, chunk=len(X))


def load_jax_params(model: Transformer, params: dict) -> Transformer:
    """Copy a JAX transformer's parameters (makemore_jax.models.transformer) into `model`."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
    ln = lambda m, p: (m.weight.copy_(t(p["gamma"])), m.bias.copy_(t(p["beta"])))
    lin = lambda m, p: (m.weight.copy_(t(np.asarray(p["W"]).reshape(m.in_features, -1).T)),
                        m.bias.copy_(t(np.asarray(p["b"]).reshape(-1))) if "b" in p else None)
    with torch.no_grad():
        model.wte.weight.copy_(t(params["wte"]))
        model.wpe.weight.copy_(t(params["wpe"]))
        for block, p in zip(model.h, params["blocks"]):
            ln(block.ln_1, p["ln_1"]), ln(block.ln_2, p["ln_2"])
            lin(block.attn.c_attn, p["attn"]["c_attn"]), lin(block.attn.c_proj, p["attn"]["c_proj"])
            lin(block.c_fc, p["mlp"]["c_fc"]), lin(block.c_proj, p["mlp"]["c_proj"])
        ln(model.ln_f, params["ln_f"])
        lin(model.lm_head, params["lm_head"])
    return model.eval()
