"""PyTorch reference for the gpt model: nanoGPT's model and training loop, written here.

nanoGPT (karpathy/nanoGPT, model.py and train.py) as we read it, in our own code: `GPT`
(embeddings, dropout, pre-LayerNorm blocks of `CausalSelfAttention` with one c_attn and
F.scaled_dot_product_attention(is_causal, dropout_p in train mode) and `MLP`, a final
LayerNorm, lm_head tied to wte; `bias=False` drops every bias; init N(0, 0.02), every
c_proj.weight N(0, 0.02 / sqrt(2 n_layer)); `forward` without targets returns every
position's logits), `configure_optimizers` (AdamW, weight decay on dim >= 2 parameters
only), `get_lr` (linear warmup, cosine to min_lr), `get_batch` (windows at torch.randint
offsets) and `train_step` (forward, backward, clip_grad_norm_, step, zero_grad).

Entry points: `from_jax_params(params, config)`, `loops(X, Y, config, ...)` (the benchmark
interface: "lecture eager", "torch.nn + torch.optim", "torch.compile") and
`train(text_ids, config, ...)` (a whole nanoGPT run).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

from . import copy_params


class LayerNorm(tnn.Module):
    """LayerNorm with an optional bias, as nanoGPT's: F.layer_norm with bias None when bias=False."""

    def __init__(self, n: int, bias: bool):
        super().__init__()
        self.weight = tnn.Parameter(torch.ones(n))
        self.bias = tnn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(tnn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_attn = tnn.Linear(C, 3 * C, bias=config.bias)
        self.c_proj = tnn.Linear(C, C, bias=config.bias)
        self.resid_dropout = tnn.Dropout(config.dropout)
        self.n_head, self.dropout = config.n_head, config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = tnn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = tnn.GELU(approximate="none" if config.gelu == "exact" else "tanh")
        self.c_proj = tnn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = tnn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(tnn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1, self.ln_2 = LayerNorm(config.n_embd, config.bias), LayerNorm(config.n_embd, config.bias)
        self.attn, self.mlp = CausalSelfAttention(config), MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(tnn.Module):
    """nanoGPT's GPT sized by our transformer Config (vocab_size, block_size, n_layer, n_head,
    n_embd, dropout, bias, tie_embeddings, gelu)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte, self.wpe = tnn.Embedding(config.vocab_size, C), tnn.Embedding(config.block_size, C)
        self.drop = tnn.Dropout(config.dropout)
        self.h = tnn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(C, config.bias)
        self.lm_head = tnn.Linear(C, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                tnn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (tnn.Linear, tnn.Embedding)):
            tnn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, tnn.Linear) and module.bias is not None:
            tnn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        """nanoGPT's count: every parameter once (tied ones once), less wpe when non_embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)


def configure_optimizers(model: tnn.Module, weight_decay: float, lr: float, betas: tuple[float, float], *,
                         fused: bool = False):
    """nanoGPT's AdamW: weight decay on dim >= 2 parameters only (named_parameters lists a tied one once);
    `fused` is torch's single-kernel AdamW (nanoGPT turns it on for CUDA only, it runs on the CPU too)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))


def get_lr(it: int, *, lr: float, min_lr: float, warmup: int, decay_iters: int) -> float:
    """nanoGPT's schedule at iteration `it`."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator):
    """nanoGPT's batch: (x, y) int64 [batch_size, block_size], y shifted by one, random offsets."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator, device=generator.device)
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix])
    return x, y


def train_step(model: tnn.Module, optimizer, x, y, *, lr: float, grad_clip: float = 1.0, forward=None,
               autocast=contextlib.nullcontext, sync: bool = True):
    """One nanoGPT iteration at learning rate lr: forward, backward, clip, AdamW step; returns the loss
    (a float, or with sync=False the loss tensor, so a GPU loop need not wait for each step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast():
        _, loss = (model if forward is None else forward)(x, y)  # no `or`: a compiled module has no truth value
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item() if sync else loss.detach()  # .item(): a sync point


def from_jax_params(params: dict, config) -> GPT:
    """The torch GPT holding a JAX transformer's parameters (makemore_jax.models.transformer)."""
    model = GPT(config)
    pairs = [(model.wte.weight, params["wte"]), (model.wpe.weight, params["wpe"]), (model.ln_f, params["ln_f"])]
    pairs += [] if config.tie_embeddings else [(model.lm_head, params["lm_head"])]
    for block, p in zip(model.h, params["blocks"]):
        pairs += [(block.ln_1, p["ln_1"]), (block.ln_2, p["ln_2"]), (block.attn.c_attn, p["attn"]["c_attn"]),
                  (block.attn.c_proj, p["attn"]["c_proj"]), (block.mlp.c_fc, p["mlp"]["c_fc"]),
                  (block.mlp.c_proj, p["mlp"]["c_proj"])]
    copy_params(pairs)
    return model


def _batches(X: np.ndarray, Y: np.ndarray | None, config, batch_size: int, g: torch.Generator) -> Callable:
    """() -> (x, y): nanoGPT's get_batch on a 1-D token array X, or random rows of 2-D windows X, Y."""
    Xt = torch.from_numpy(np.asarray(X, np.int64))
    if Xt.ndim == 1:
        return lambda: get_batch(Xt, config.block_size, batch_size, g)
    Yt = torch.from_numpy(np.asarray(Y, np.int64))

    def rows():
        ix = torch.randint(0, Xt.shape[0], (batch_size,), generator=g)
        return Xt[ix], Yt[ix]
    return rows


def loops(X: np.ndarray, Y: np.ndarray | None, config, *, batch_size: int = 32, seed: int = 0,
          lr: float = 1e-3, weight_decay: float = 0.1, betas=(0.9, 0.99),
          grad_clip: float = 1.0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last minibatch loss}: n nanoGPT iterations at a constant lr each call.

    Args:
        X, Y: the training tokens int [N] (Y unused: windows at random offsets, nanoGPT's
            get_batch), or windows int [N, block_size] and their targets (random rows).
        config: the JAX transformer's Config.
    Variants: "lecture eager" (nanoGPT's model and loop as written for the CPU: its AdamW
    unfused), "torch.nn + torch.optim" (the same with AdamW(fused=True), as nanoGPT runs on
    CUDA; the model already is torch.nn with SDPA) and "torch.compile" (that one with the
    model through torch.compile, default mode; its first call compiles). All start from the
    same initialisation and draw the same batches.
    """
    def make(fused: bool, compiled: bool) -> Callable[[int], float]:
        torch.manual_seed(seed)
        model = GPT(config)
        opt = configure_optimizers(model, weight_decay, lr, betas, fused=fused)
        forward = torch.compile(model) if compiled else model
        batch = _batches(X, Y, config, batch_size, torch.Generator().manual_seed(seed))

        def run(n: int) -> float:
            loss = math.nan
            for _ in range(n):
                loss = train_step(model, opt, *batch(), lr=lr, grad_clip=grad_clip, forward=forward)
            return loss
        return run

    return {"lecture eager": make(False, False), "torch.nn + torch.optim": make(True, False),
            "torch.compile": make(True, True)}


@torch.no_grad()
def window_loss(model: tnn.Module, ids: torch.Tensor, block_size: int, *, chunk: int = 256,
                autocast=contextlib.nullcontext) -> float:
    """Exact mean cross-entropy over the non-overlapping block_size windows of ids (eval mode).

    Window i reads ids[i*bs : (i+1)*bs] and predicts ids[i*bs + 1 : (i+1)*bs + 1]; the
    (len - 1) // block_size whole windows are scored, a shorter tail is left out.
    """
    was_training = model.training
    model.eval()
    n = (len(ids) - 1) // block_size
    x = ids[:n * block_size].view(n, block_size)
    y = ids[1:n * block_size + 1].view(n, block_size)
    total = 0.0
    for i in range(0, n, chunk):
        with autocast():
            logits, _ = model(x[i:i + chunk])
        total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y[i:i + chunk].reshape(-1),
                                 reduction="sum").item()
    model.train(was_training)
    return total / (n * block_size)


def train(text_ids: np.ndarray | Sequence[int], config, *, steps: int = 2000, batch_size: int = 12,
          lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100, weight_decay: float = 0.1,
          betas=(0.9, 0.99), grad_clip: float = 1.0, seed: int = 1337, compiled: bool = False,
          device: str = "cpu", train_loss: bool = True) -> dict:
    """A whole nanoGPT run on text_ids, then the exact validation loss.

    The first 90% of text_ids train (nanoGPT's split), the last 10% validate. `steps`
    iterations 0..steps-1 at get_lr(it) with lr_decay_iters = steps (nanoGPT's own loop
    runs 0..max_iters, one more). With config.dtype "bfloat16" the forward runs under
    torch.autocast(bfloat16), as nanoGPT's train.py.

    Returns:
        {"val_loss": window_loss on the validation split, "train_loss": the same on the
        training split (None when train_loss is False, which skips that pass), "last_loss": the last
        minibatch's, "steps_per_s": training only, "model": the trained module}.
    """
    ids = torch.as_tensor(np.asarray(text_ids, np.int64))
    n = int(0.9 * len(ids))
    train_ids, val_ids = ids[:n].to(device), ids[n:].to(device)
    torch.manual_seed(seed)
    model = GPT(config).to(device)
    opt = configure_optimizers(model, weight_decay, lr, betas)
    forward = torch.compile(model) if compiled else model
    autocast = contextlib.nullcontext
    if getattr(config, "dtype", "float32") == "bfloat16":
        autocast = lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)  # noqa: E731
    g = torch.Generator(device=device).manual_seed(seed)
    t0, loss = time.perf_counter(), math.nan
    for it in range(steps):
        x, y = get_batch(train_ids, config.block_size, batch_size, g)
        step_lr = get_lr(it, lr=lr, min_lr=min_lr, warmup=warmup, decay_iters=steps)
        loss = train_step(model, opt, x, y, lr=step_lr, grad_clip=grad_clip, forward=forward, autocast=autocast)
    seconds = time.perf_counter() - t0
    return {"val_loss": window_loss(model, val_ids, config.block_size, autocast=autocast),
            "train_loss": window_loss(model, train_ids, config.block_size, autocast=autocast) if train_loss else None,
            "last_loss": loss, "steps_per_s": steps / seconds, "model": model}
