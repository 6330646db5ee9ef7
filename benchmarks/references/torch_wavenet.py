"""PyTorch references for the lecture-5 WaveNet (Karpathy, makemore part 5): two training loops.

"lecture eager" is the lecture's own code: its hand-written Embedding, FlattenConsecutive,
Linear, BatchNorm1d (statistics over dims (0, 1) of a [B, T, C] input) and Tanh classes in a
Sequential, the output weights x 0.1, minibatches from `torch.randint`, `F.cross_entropy`,
`p.grad = None`, `loss.backward()` and `p.data += -lr * p.grad` (lr 0.1, then 0.01 from
step 150k). "torch.nn + torch.optim" is the same network from torch.nn modules
(nn.BatchNorm1d on the (B*T, C) rows) trained with torch.optim.SGD.

torch is not a project dependency (the optional `bench` extra: `pip install torch==2.13.0`,
the CPU build); the benchmarks import this module only when torch is importable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .torch_mlp import BatchNorm1d, Linear, Tanh, whole_split_loss  # lecture 3's classes; lecture 5 reuses them

DECAY_STEP = 150_000  # the lecture's lr drop


# ----------------------------------------------------------------------------- the lecture's classes


class Embedding:
    def __init__(self, num_embeddings, embedding_dim, *, g=None):
        self.weight = torch.randn((num_embeddings, embedding_dim), generator=g)

    def __call__(self, IX):
        self.out = self.weight[IX]
        return self.out

    def parameters(self):
        return [self.weight]


class FlattenConsecutive:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        if x.shape[1] == 1:
            x = x.squeeze(1)
        self.out = x
        return self.out

    def parameters(self):
        return []


class Sequential:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return self.out

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]


def lecture_model(config, g: torch.Generator) -> Sequential:
    """The lecture's model for a wavenet Config (n_embd 24, n_hidden 128, block_size 8 by default)."""
    layers = [Embedding(config.vocab_size, config.n_embd, g=g)]
    fan_in = config.n_embd
    for _ in range(config.n_layers):
        layers += [FlattenConsecutive(2), Linear(2 * fan_in, config.n_hidden, bias=False, g=g),
                   BatchNorm1d(config.n_hidden), Tanh()]
        fan_in = config.n_hidden
    layers.append(Linear(config.n_hidden, config.vocab_size, g=g))
    model = Sequential(layers)
    with torch.no_grad():
        model.layers[-1].weight *= 0.1  # last layer make less confident
    for p in model.parameters():
        p.requires_grad = True
    return model


# ----------------------------------------------------------------------------- torch.nn


class _Pairs(nn.Module):
    """[B, T, C] -> [B, T/2, 2C]."""

    def forward(self, x):
        B, T, C = x.shape
        return x.reshape(B, T // 2, 2 * C)


class _BatchNormRows(nn.BatchNorm1d):
    """nn.BatchNorm1d over every (batch, time) row of a [B, T, C] input."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


def torch_nn_model(config) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Embedding(config.vocab_size, config.n_embd)]
    fan_in = config.n_embd
    for _ in range(config.n_layers):
        layers += [_Pairs(), nn.Linear(2 * fan_in, config.n_hidden, bias=False), _BatchNormRows(config.n_hidden),
                   nn.Tanh()]
        fan_in = config.n_hidden
    layers += [nn.Flatten(), nn.Linear(config.n_hidden, config.vocab_size)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        model[-1].weight *= 0.1
    return model


# ----------------------------------------------------------------------------- loops


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32,
          seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last minibatch loss}; each run continues the same model by n steps.

    Args:
        X: int [N, block_size] contexts, Y: int [N] next characters (the model's context dataset).
        config: the JAX model's wavenet.Config (vocab_size, block_size, n_embd, n_hidden).
    """
    Xtr = torch.from_numpy(np.ascontiguousarray(X)).long()
    Ytr = torch.from_numpy(np.ascontiguousarray(Y)).long()

    g = torch.Generator().manual_seed(seed)
    model = lecture_model(config, g)
    parameters = model.parameters()
    lecture_step = [0]

    def lecture_eager(n: int) -> float:
        for _ in range(n):
            ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
            Xb, Yb = Xtr[ix], Ytr[ix]
            logits = model(Xb)
            loss = F.cross_entropy(logits, Yb)
            for p in parameters:
                p.grad = None
            loss.backward()
            lr = 0.1 if lecture_step[0] < DECAY_STEP else 0.01
            for p in parameters:
                p.data += -lr * p.grad
            lecture_step[0] += 1
        return loss.item()

    def torch_nn(compiled: bool) -> Callable[[int], float]:
        torch.manual_seed(seed)
        net = torch_nn_model(config)
        forward = torch.compile(net) if compiled else net
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        nn_step = [0]
        g_nn = torch.Generator().manual_seed(seed)

        def run(n: int) -> float:
            net.train()
            for _ in range(n):
                ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g_nn)
                loss = F.cross_entropy(forward(Xtr[ix]), Ytr[ix])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if nn_step[0] == DECAY_STEP:
                    opt.param_groups[0]["lr"] = 0.01
                opt.step()
                nn_step[0] += 1
            return loss.item()
        return run

    return {"lecture eager": lecture_eager, "torch.nn + torch.optim": torch_nn(False), "torch.compile": torch_nn(True)}


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one call (the torch.nn model in eval mode)."""
    torch.manual_seed(0)
    return whole_split_loss(torch_nn_model(config), X, Y)
