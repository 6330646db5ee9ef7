"""PyTorch references for mlp, mlp-bn and mlp-deep (makemore parts 2 and 3), and the lectures' samplers.

"lecture eager" is the lectures' code: lecture 2's bare tensors C, W1, b1, W2, b2 (with
lecture 3's inline BatchNorm, running estimates at momentum 0.001) for one hidden layer,
lecture 3's Linear / BatchNorm1d / Tanh classes for deeper nets; `p.data += -lr * p.grad`
at lr 0.1, then 0.01 from step 100k. "torch.nn + torch.optim": the same net from torch.nn
modules (PyTorch's init) with optim.SGD at that schedule; "torch.compile": that compiled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import longs, loop, split_loss_of

schedule = lambda step: 0.1 if step < 100_000 else 0.01  # noqa: E731 (the lectures' lr drop)


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int | None = 32, seed: int = 0) -> dict:
    """{variant: run(n_steps) -> last loss} for a JAX mlp config (see the module docstring).

    Args:
        X: int [N, block_size] contexts; Y: int [N] next characters. batch_size None: all rows.
        config: makemore_jax.models.mlp.Config (vocab_size, block_size, n_embd, n_hidden,
            n_layers, batchnorm, out_batchnorm, init).
    """
    X, Y = longs(X, Y)
    g = torch.Generator().manual_seed(seed)
    one = config.n_layers == 1 and not config.out_batchnorm
    forward, params = (lecture_forward if one else lecture_classes_forward)(config, g)
    out = {"lecture eager": loop(forward, X, Y, batch_size=batch_size, seed=seed, lr=schedule, params=params)}
    torch.manual_seed(seed)
    for variant, compiled in (("torch.nn + torch.optim", False), ("torch.compile", True)):
        model = nn_model(config).train()
        out[variant] = loop(torch.compile(model) if compiled else model, X, Y, batch_size=batch_size, seed=seed,
                            lr=schedule, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    return out


def lecture_forward(config, g):
    """Lectures 2 and 3, one hidden layer: (forward(Xb) -> logits, parameters)."""
    fan_in, H, V = config.block_size * config.n_embd, config.n_hidden, config.vocab_size
    s_w1, s_b1, s_w2, s_b2 = (1.0, 1.0, 1.0, 1.0) if config.init == "unit" else ((5 / 3) / fan_in**0.5, 0.01, 0.01, 0)
    C = torch.randn((V, config.n_embd), generator=g)
    W1, b1 = torch.randn((fan_in, H), generator=g) * s_w1, torch.randn(H, generator=g) * s_b1
    W2, b2 = torch.randn((H, V), generator=g) * s_w2, torch.randn(V, generator=g) * s_b2
    bngain, bnbias = torch.ones((1, H)), torch.zeros((1, H))
    running = {"mean": torch.zeros((1, H)), "std": torch.ones((1, H))}
    parameters = [C, W1, b1, W2, b2] + ([bngain, bnbias] if config.batchnorm else [])
    for p in parameters:
        p.requires_grad = True

    def forward(Xb):
        emb = C[Xb]  # embed the characters into vectors
        hpreact = emb.view(emb.shape[0], -1) @ W1 + b1  # hidden layer pre-activation
        if config.batchnorm:
            bnmeani, bnstdi = hpreact.mean(0, keepdim=True), hpreact.std(0, keepdim=True)
            hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
            with torch.no_grad():
                running["mean"] = 0.999 * running["mean"] + 0.001 * bnmeani
                running["std"] = 0.999 * running["std"] + 0.001 * bnstdi
        return torch.tanh(hpreact) @ W2 + b2  # hidden layer, output layer
    return forward, parameters


class Linear:  # lecture 3's classes, as written there
    def __init__(self, fan_in, fan_out, bias=True, *, g):
        self.weight = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
        self.bias = torch.zeros(fan_out) if bias else None

    def __call__(self, x):
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self):
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    def __init__(self, dim, eps=1e-5, momentum=0.1):
        self.eps, self.momentum, self.training = eps, momentum, True
        self.gamma, self.beta = torch.ones(dim), torch.zeros(dim)
        self.running_mean, self.running_var = torch.zeros(dim), torch.ones(dim)

    def __call__(self, x):
        if self.training:
            dim = 0 if x.ndim == 2 else (0, 1)  # lecture 5: over batch and time of a [B, T, C] input
            xmean, xvar = x.mean(dim, keepdim=True), x.var(dim, keepdim=True)
        else:
            xmean, xvar = self.running_mean, self.running_var
        self.out = self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return self.out

    def parameters(self):
        return [self.gamma, self.beta]


class Tanh:
    def __call__(self, x):
        self.out = torch.tanh(x)
        return self.out

    def parameters(self):
        return []


def lecture_classes_forward(config, g):
    """Lecture 3's deep net from its own classes: (forward(Xb) -> logits, parameters)."""
    C = torch.randn((config.vocab_size, config.n_embd), generator=g)
    fan_in, layers = config.block_size * config.n_embd, []
    for _ in range(config.n_layers):
        layers += [Linear(fan_in, config.n_hidden, bias=not config.batchnorm, g=g)]
        layers += [BatchNorm1d(config.n_hidden), Tanh()] if config.batchnorm else [Tanh()]
        fan_in = config.n_hidden
    layers += [Linear(fan_in, config.vocab_size, bias=not config.out_batchnorm, g=g)]
    layers += [BatchNorm1d(config.vocab_size)] if config.out_batchnorm else []
    with torch.no_grad():
        if config.out_batchnorm:
            layers[-1].gamma *= 0.1  # last layer: make less confident
        else:
            layers[-1].weight *= 0.1
        for layer in layers[:-1]:  # all other layers: apply gain
            if isinstance(layer, Linear):
                layer.weight *= 5 / 3
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True

    def forward(Xb):
        x = C[Xb].view(Xb.shape[0], -1)
        for layer in layers:
            x = layer(x)
        return x
    return forward, parameters


def nn_model(config) -> nn.Sequential:
    """The network as torch.nn modules (PyTorch's default init)."""
    mods: list[nn.Module] = [nn.Embedding(config.vocab_size, config.n_embd), nn.Flatten()]
    fan_in = config.block_size * config.n_embd
    for _ in range(config.n_layers):
        mods.append(nn.Linear(fan_in, config.n_hidden, bias=not config.batchnorm))
        mods += [nn.BatchNorm1d(config.n_hidden), nn.Tanh()] if config.batchnorm else [nn.Tanh()]
        fan_in = config.n_hidden
    mods.append(nn.Linear(fan_in, config.vocab_size, bias=not config.out_batchnorm))
    mods += [nn.BatchNorm1d(config.vocab_size)] if config.out_batchnorm else []
    return nn.Sequential(*mods)


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one call (the torch.nn model, eval mode)."""
    return split_loss_of(nn_model(config), X, Y)


# ----------------------------------------------------------------------------- sampling


def sample_lecture(params: dict, n: int, *, block_size: int, seed: int = 0) -> list[list[int]]:
    """Lecture 2's sampler: one name at a time, one forward pass per character.

    Args:
        params: the lecture-2 MLP's C, W1, b1, W2, b2 (numpy or torch).
    Returns:
        n lists of token ids, each ending with the end token 0.
    """
    C, W1, b1, W2, b2 = (torch.as_tensor(np.asarray(params[k])) for k in ("C", "W1", "b1", "W2", "b2"))
    g, names = torch.Generator().manual_seed(seed), []
    with torch.no_grad():
        for _ in range(n):
            out, context = [], [0] * block_size
            while not out or out[-1] != 0:
                h = torch.tanh(C[torch.tensor([context])].view(1, -1) @ W1 + b1)  # (1, n_hidden)
                ix = torch.multinomial(F.softmax(h @ W2 + b2, dim=1), num_samples=1, generator=g).item()
                context = context[1:] + [ix]
                out.append(ix)
            names.append(out)
    return names


@torch.no_grad()
def sample_batched(params: dict, n: int, *, block_size: int, max_len: int, seed: int = 0) -> torch.Tensor:
    """n names at once, one forward pass per position, until all have ended or max_len.

    Returns:
        int64 [n, steps]: each row's tokens, 0 after its end.
    """
    C, W1, b1, W2, b2 = (torch.as_tensor(np.asarray(params[k])) for k in ("C", "W1", "b1", "W2", "b2"))
    g = torch.Generator().manual_seed(seed)
    context, done, out = torch.zeros((n, block_size), dtype=torch.long), torch.zeros(n, dtype=torch.bool), []
    for _ in range(max_len):
        probs = F.softmax(torch.tanh(C[context].view(n, -1) @ W1 + b1) @ W2 + b2, dim=1)
        ix = torch.multinomial(probs, num_samples=1, generator=g).squeeze(1).masked_fill(done, 0)
        out.append(ix)
        context = torch.cat([context[:, 1:], ix[:, None]], dim=1)
        done |= ix == 0
        if done.all():
            break
    return torch.stack(out, dim=1)
