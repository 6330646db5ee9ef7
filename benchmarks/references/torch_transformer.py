"""PyTorch references for the transformer: makemore.py's model and its training loop.

"lecture eager": makemore.py's Transformer as written (masked_fill'ed causal attention,
NewGELU written out) with its AdamW (MAKEMORE_ADAMW), batch 32; "torch.nn + torch.optim":
the same with F.scaled_dot_product_attention, F.gelu(tanh) and AdamW(fused=True);
"torch.compile": that compiled. `train_makemore`: makemore.py's whole run on a split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

from . import copy_params, longs, loop, mean_loss, split_loss_of

MAKEMORE_ADAMW = {"lr": 5e-4, "betas": (0.9, 0.99), "weight_decay": 0.01, "eps": 1e-8}  # makemore.py's optimizer


class _Attention(tnn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, sdpa: bool):
        super().__init__()
        self.c_attn, self.c_proj = tnn.Linear(n_embd, 3 * n_embd), tnn.Linear(n_embd, n_embd)
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
            y = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1) @ v
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
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device).unsqueeze(0))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def make_model(config, *, sdpa: bool = False, seed: int = 0, init: str = "pytorch") -> Transformer:
    """makemore's Transformer; init "pytorch" leaves torch's layer defaults (makemore.py's later
    version), "gpt2" is N(0, 0.02) weights and zero biases (its first version, minGPT)."""
    torch.manual_seed(seed)
    model = Transformer(config.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd, sdpa=sdpa)
    for m in model.modules() if init == "gpt2" else ():
        if isinstance(m, (tnn.Linear, tnn.Embedding)):
            tnn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, tnn.Linear) and m.bias is not None:
            tnn.init.zeros_(m.bias)
    return model


def train_makemore(arrays: dict, config, *, steps: int, eval_every: int, seed: int = 3407,
                   init: str = "pytorch") -> dict:
    """makemore.py's own training loop on the given split, selecting on dev.

    MAKEMORE_ADAMW on every parameter, batch 32 drawn with replacement, no clipping; every
    `eval_every` steps (steps rounded down to a multiple of it) the exact loss of every split.

    Args:
        arrays: {"train" | "dev" | "test": (X, Y)} int [N, block_size] (targets -1 ignored).
    Returns:
        {"best_step", "losses_at_best_dev": {split: loss}, "curve": [(step, {split: loss})], "steps_per_s"}.
    """
    model = make_model(config, seed=seed, init=init)
    tensors = {k: longs(X, Y) for k, (X, Y) in arrays.items()}
    train = loop(model, *tensors["train"], batch_size=32, seed=seed, lr=MAKEMORE_ADAMW["lr"],
                 optimizer=torch.optim.AdamW(model.parameters(), **MAKEMORE_ADAMW))
    curve, train_time = [], 0.0
    for step in range(eval_every, steps + 1, eval_every):
        t0 = time.perf_counter()
        train(eval_every)
        train_time += time.perf_counter() - t0
        curve.append((step, {k: mean_loss(model, *v, chunk=2000) for k, v in tensors.items()}))
    best = min(curve, key=lambda point: point[1]["dev"])
    return {"best_step": best[0], "losses_at_best_dev": best[1], "curve": curve,
            "steps_per_s": len(curve) * eval_every / train_time}


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32, seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last loss}: n steps of makemore's AdamW; X, Y int [N, block_size] (-1 ignored)."""
    X, Y = longs(X, Y)
    out = {}
    for variant, sdpa, compiled in (("lecture eager", False, False), ("torch.nn + torch.optim", True, False),
                                    ("torch.compile", True, True)):
        model = make_model(config, sdpa=sdpa, seed=seed)
        opt = torch.optim.AdamW(model.parameters(), **MAKEMORE_ADAMW, **({"fused": True} if sdpa else {}))
        out[variant] = loop(torch.compile(model) if compiled else model, X, Y, batch_size=batch_size, seed=seed,
                            lr=MAKEMORE_ADAMW["lr"], optimizer=opt)
    return out


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over every target of the split (-1 ignored) in one call, eval mode."""
    return split_loss_of(make_model(config, sdpa=True), X, Y)


def load_jax_params(model: Transformer, params: dict) -> Transformer:
    """Copy a JAX transformer's parameters (makemore_jax.models.transformer) into `model`."""
    pairs = [(model.wte.weight, params["wte"]), (model.wpe.weight, params["wpe"]), (model.ln_f, params["ln_f"]),
             (model.lm_head, params["lm_head"])]
    for block, p in zip(model.h, params["blocks"]):
        pairs += [(block.ln_1, p["ln_1"]), (block.ln_2, p["ln_2"]), (block.attn.c_attn, p["attn"]["c_attn"]),
                  (block.attn.c_proj, p["attn"]["c_proj"]), (block.c_fc, p["mlp"]["c_fc"]),
                  (block.c_proj, p["mlp"]["c_proj"])]
    copy_params(pairs)
    return model.eval()
