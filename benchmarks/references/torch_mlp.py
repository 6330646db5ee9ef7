"""PyTorch eager reference: the lecture-2 MLP (Karpathy, makemore part 2; Bengio et al. 2003).

The training loop is written in the lecture's own style: bare tensors with
``requires_grad``, unit-normal ``torch.randn`` init from one seeded generator, minibatches
drawn with ``torch.randint``, ``F.cross_entropy``, ``p.grad = None``, ``loss.backward()``
and the manual SGD update ``p.data += -lr * p.grad`` with lr 0.1, then 0.01 from
``decay_step`` on.

torch is not a project dependency: it comes from the optional ``bench`` extra. On the
project's machines install the CPU build with ``pip install torch==2.13.0`` (a plain
``pip install torch`` pulls a multi-GB CUDA build). The benchmark runner imports this module
only when torch is importable.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

PARAM_NAMES = ("C", "W1", "b1", "W2", "b2")


def init_params(vocab_size: int, block_size: int, *, n_embd: int = 10, n_hidden: int = 200,
                g: torch.Generator) -> dict[str, torch.Tensor]:
    """The lecture-2 parameters, all unit normal, drawn from ``g`` in the lecture's order."""
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((block_size * n_embd, n_hidden), generator=g)
    b1 = torch.randn(n_hidden, generator=g)
    W2 = torch.randn((n_hidden, vocab_size), generator=g)
    b2 = torch.randn(vocab_size, generator=g)
    params = dict(zip(PARAM_NAMES, (C, W1, b1, W2, b2)))
    for p in params.values():
        p.requires_grad = True
    return params


def _forward(params: dict[str, torch.Tensor], Xb: torch.Tensor) -> torch.Tensor:
    C, W1, b1, W2, b2 = (params[k] for k in PARAM_NAMES)
    emb = C[Xb]  # [B, block, n_embd]
    h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)  # [B, n_hidden]
    return h @ W2 + b2  # [B, vocab]


def train(Xtr: np.ndarray, Ytr: np.ndarray, *, vocab_size: int, steps: int, batch_size: int = 32,
          n_embd: int = 10, n_hidden: int = 200, seed: int = 2147483647,
          decay_step: int = 100_000) -> dict:
    """Train the lecture-2 MLP for ``steps`` minibatch SGD steps.

    Args:
        Xtr: int array [N, block_size] of contexts. Ytr: int array [N] of next characters.

    Returns:
        {"seconds": wall time of the training loop alone (data conversion and init excluded),
         "steps_per_s", "first_loss" and "final_loss": the first and last minibatch losses,
         "params": {"C", "W1", "b1", "W2", "b2"} as float32 numpy arrays,
         "param_count", "num_threads": torch.get_num_threads() during the run}.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    Xtr = torch.from_numpy(np.ascontiguousarray(Xtr)).long()
    Ytr = torch.from_numpy(np.ascontiguousarray(Ytr)).long()
    block_size = Xtr.shape[1]

    g = torch.Generator().manual_seed(seed)
    params = init_params(vocab_size, block_size, n_embd=n_embd, n_hidden=n_hidden, g=g)
    parameters = list(params.values())

    first_loss = None
    t0 = time.perf_counter()
    for i in range(steps):
        # minibatch construct
        ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]
        # forward pass
        logits = _forward(params, Xb)
        loss = F.cross_entropy(logits, Yb)
        if i == 0:
            first_loss = loss.item()
        # backward pass
        for p in parameters:
            p.grad = None
        loss.backward()
        # update
        lr = 0.1 if i < decay_step else 0.01
        for p in parameters:
            p.data += -lr * p.grad
    final_loss = loss.item()
    seconds = time.perf_counter() - t0

    return {
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "first_loss": first_loss,
        "final_loss": final_loss,
        "params": {k: v.detach().numpy().copy() for k, v in params.items()},
        "param_count": sum(p.nelement() for p in parameters),
        "num_threads": torch.get_num_threads(),
    }


@torch.no_grad()
def eval_loss(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
    """Mean cross-entropy over a whole split (the lecture's ``split_loss``)."""
    tparams = {k: torch.as_tensor(np.asarray(params[k])) for k in PARAM_NAMES}
    X = torch.from_numpy(np.ascontiguousarray(X)).long()
    Y = torch.from_numpy(np.ascontiguousarray(Y)).long()
    return F.cross_entropy(_forward(tparams, X), Y).item()
