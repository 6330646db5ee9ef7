"""PyTorch references for the lecture-5 WaveNet (makemore part 5).

"lecture eager" is the lecture's code: its Embedding, FlattenConsecutive, Linear,
BatchNorm1d (statistics over dims (0, 1) of a [B, T, C] input) and Tanh classes, output
weights x 0.1, `p.data += -lr * p.grad` at lr 0.1, then 0.01 from step 150k.
"torch.nn + torch.optim" is the same network from torch.nn modules (nn.BatchNorm1d on the
(B*T, C) rows) with torch.optim.SGD; "torch.compile" is that through torch.compile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from . import longs, loop, split_loss_of
from .torch_mlp import BatchNorm1d, Linear, Tanh  # lecture 3's classes; lecture 5 reuses them

schedule = lambda step: 0.1 if step < 150_000 else 0.01  # noqa: E731 (the lecture's lr drop)


class Embedding:  # the lecture's classes
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
        self.out = x.squeeze(1) if x.shape[1] == 1 else x
        return self.out

    def parameters(self):
        return []


def lecture_model(config, g: torch.Generator):
    """The lecture's model for a wavenet Config: (forward(Xb) -> logits, parameters)."""
    layers, fan_in = [Embedding(config.vocab_size, config.n_embd, g=g)], config.n_embd
    for _ in range(config.n_layers):
        layers += [FlattenConsecutive(2), Linear(2 * fan_in, config.n_hidden, bias=False, g=g),
                   BatchNorm1d(config.n_hidden), Tanh()]
        fan_in = config.n_hidden
    layers.append(Linear(config.n_hidden, config.vocab_size, g=g))
    with torch.no_grad():
        layers[-1].weight *= 0.1  # last layer make less confident
    parameters = [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True

    def forward(x):
        for layer in layers:
            x = layer(x)
        return x
    return forward, parameters


class _Pairs(nn.Module):
    def forward(self, x):  # [B, T, C] -> [B, T/2, 2C]
        B, T, C = x.shape
        return x.reshape(B, T // 2, 2 * C)


class _BatchNormRows(nn.BatchNorm1d):
    def forward(self, x):  # nn.BatchNorm1d over every (batch, time) row of a [B, T, C] input
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


def torch_nn_model(config) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Embedding(config.vocab_size, config.n_embd)]
    fan_in = config.n_embd
    for _ in range(config.n_layers):
        layers += [_Pairs(), nn.Linear(2 * fan_in, config.n_hidden, bias=False), _BatchNormRows(config.n_hidden),
                   nn.Tanh()]
        fan_in = config.n_hidden
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(config.n_hidden, config.vocab_size))
    with torch.no_grad():
        model[-1].weight *= 0.1
    return model


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int = 32,
          seed: int = 0) -> dict[str, Callable[[int], float]]:
    """{variant: run(n) -> last loss}; X int [N, block_size] contexts, Y int [N] next characters."""
    X, Y = longs(X, Y)
    forward, params = lecture_model(config, torch.Generator().manual_seed(seed))
    out = {"lecture eager": loop(forward, X, Y, batch_size=batch_size, seed=seed, lr=schedule, params=params)}
    for variant, compiled in (("torch.nn + torch.optim", False), ("torch.compile", True)):
        torch.manual_seed(seed)
        net = torch_nn_model(config).train()
        out[variant] = loop(torch.compile(net) if compiled else net, X, Y, batch_size=batch_size, seed=seed,
                            lr=schedule, optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    return out


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one call (the torch.nn model in eval mode)."""
    torch.manual_seed(0)
    return split_loss_of(torch_nn_model(config), X, Y)
