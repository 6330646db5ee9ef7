"""PyTorch references for mlp, mlp-bn and mlp-deep (makemore parts 2 and 3).

Three ways a PyTorch user trains the same network (sizes from the JAX model's config):

* "lecture eager": the lectures' own code. One hidden layer (mlp, mlp-bn): lecture 2's bare
  tensors C, W1, b1, W2, b2 (plus lecture 3's inline BatchNorm: bngain, bnbias, batch mean
  and unbiased std, running estimates with momentum 0.001); deeper nets (mlp-deep): lecture
  3's Linear / BatchNorm1d / Tanh classes in a list. Minibatches from `torch.randint`,
  `p.grad = None`, `loss.backward()`, `p.data += -lr * p.grad`, lr 0.1 then 0.01 at 100k.
* "torch.nn + torch.optim": nn.Embedding, nn.Linear, nn.BatchNorm1d, nn.Tanh in an
  nn.Sequential, optim.SGD with a MultiStepLR schedule, PyTorch's default init.
* "torch.compile": the same nn.Sequential through `torch.compile` (default mode); its first
  call compiles.

Also the lectures' samplers (one name at a time, and a batched one) and the whole-split loss.
torch comes from the optional `bench` extra: `pip install torch==2.13.0` (the CPU build).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LR, DECAY_STEP = 0.1, 100_000


def loops(X: np.ndarray, Y: np.ndarray, config, *, batch_size: int | None = 32, seed: int = 0) -> dict:
    """{variant: run(n_steps) -> last loss} for the JAX mlp config (see the module docstring).

    Args:
        X: int [N, block_size] contexts; Y: int [N] next characters (the model's dataset).
        config: makemore_jax.models.mlp.Config (vocab_size, block_size, n_embd, n_hidden,
            n_layers, batchnorm, out_batchnorm, init).
        batch_size: minibatch rows per step; None: the whole X every step.
    """
    X, Y = torch.as_tensor(np.asarray(X), dtype=torch.long), torch.as_tensor(np.asarray(Y), dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    lecture = _lecture_forward(config, g) if config.n_layers == 1 and not config.out_batchnorm \
        else _lecture_classes_forward(config, g)
    torch.manual_seed(seed)
    return {"lecture eager": _manual_sgd_loop(*lecture, X, Y, batch_size, g),
            "torch.nn + torch.optim": _optim_loop(nn_model(config), X, Y, batch_size, g, compiled=False),
            "torch.compile": _optim_loop(nn_model(config), X, Y, batch_size, g, compiled=True)}


def _batches(X, Y, batch_size, g):
    if batch_size is None:
        return X, Y
    ix = torch.randint(0, X.shape[0], (batch_size,), generator=g)
    return X[ix], Y[ix]


def _manual_sgd_loop(forward, parameters, X, Y, batch_size, g):
    step = [0]

    def run(n: int) -> float:
        for _ in range(n):
            Xb, Yb = _batches(X, Y, batch_size, g)  # minibatch construct
            loss = F.cross_entropy(forward(Xb), Yb)  # forward pass
            for p in parameters:  # backward pass
                p.grad = None
            loss.backward()
            lr = LR if step[0] < DECAY_STEP else LR / 10  # update
            for p in parameters:
                p.data += -lr * p.grad
            step[0] += 1
        return loss.item()
    return run


def _optim_loop(model, X, Y, batch_size, g, *, compiled: bool):
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[DECAY_STEP], gamma=0.1)
    forward = torch.compile(model) if compiled else model
    model.train()

    def run(n: int) -> float:
        for _ in range(n):
            Xb, Yb = _batches(X, Y, batch_size, g)
            loss = F.cross_entropy(forward(Xb), Yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        return loss.item()
    return run


# ----------------------------------------------------------------------------- the networks


def _scales(config, fan_in: int) -> tuple[float, float, float, float]:
    """(W1, b1, W2, b2) scales: lecture 2's unit normal, or lecture 3's fixes."""
    if config.init == "unit":
        return 1.0, 1.0, 1.0, 1.0
    return (5 / 3) / fan_in**0.5, 0.01, 0.01, 0.0


def _lecture_forward(config, g):
    """Lectures 2 and 3 (one hidden layer): (forward(Xb) -> logits, parameters)."""
    fan_in = config.block_size * config.n_embd
    s_w1, s_b1, s_w2, s_b2 = _scales(config, fan_in)
    C = torch.randn((config.vocab_size, config.n_embd), generator=g)
    W1 = torch.randn((fan_in, config.n_hidden), generator=g) * s_w1
    b1 = torch.randn(config.n_hidden, generator=g) * s_b1
    W2 = torch.randn((config.n_hidden, config.vocab_size), generator=g) * s_w2
    b2 = torch.randn(config.vocab_size, generator=g) * s_b2
    bngain, bnbias = torch.ones((1, config.n_hidden)), torch.zeros((1, config.n_hidden))
    running = {"mean": torch.zeros((1, config.n_hidden)), "std": torch.ones((1, config.n_hidden))}
    parameters = [C, W1, b1, W2, b2] + ([bngain, bnbias] if config.batchnorm else [])
    for p in parameters:
        p.requires_grad = True

    def forward(Xb):
        emb = C[Xb]  # embed the characters into vectors
        embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
        hpreact = embcat @ W1 + b1  # hidden layer pre-activation
        if config.batchnorm:
            bnmeani = hpreact.mean(0, keepdim=True)
            bnstdi = hpreact.std(0, keepdim=True)
            hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
            with torch.no_grad():
                running["mean"] = 0.999 * running["mean"] + 0.001 * bnmeani
                running["std"] = 0.999 * running["std"] + 0.001 * bnstdi
        h = torch.tanh(hpreact)  # hidden layer
        return h @ W2 + b2  # output layer
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
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        self.out = self.gamma * xhat + self.beta
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


def _lecture_classes_forward(config, g):
    """Lecture 3's deep net from its own classes: (forward(Xb) -> logits, parameters)."""
    C = torch.randn((config.vocab_size, config.n_embd), generator=g)
    fan_in, layers = config.block_size * config.n_embd, []
    for _ in range(config.n_layers):
        layers += [Linear(fan_in, config.n_hidden, bias=not config.batchnorm, g=g)]
        layers += [BatchNorm1d(config.n_hidden)] if config.batchnorm else []
        layers += [Tanh()]
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
        emb = C[Xb]
        x = emb.view(emb.shape[0], -1)
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
        mods += [nn.BatchNorm1d(config.n_hidden)] if config.batchnorm else []
        mods.append(nn.Tanh())
        fan_in = config.n_hidden
    mods.append(nn.Linear(fan_in, config.vocab_size, bias=not config.out_batchnorm))
    mods += [nn.BatchNorm1d(config.vocab_size)] if config.out_batchnorm else []
    return nn.Sequential(*mods)


# ----------------------------------------------------------------------------- evaluation and sampling


def split_loss(X: np.ndarray, Y: np.ndarray, config):
    """() -> the mean loss over the whole split in one call, as the lectures' split_loss (eval mode)."""
    return whole_split_loss(nn_model(config), X, Y)


def whole_split_loss(model: nn.Module, X: np.ndarray, Y: np.ndarray):
    """() -> cross-entropy of `model` (in eval mode) over all of the context dataset (X, Y) in one call."""
    model.eval()
    X, Y = torch.as_tensor(np.asarray(X), dtype=torch.long), torch.as_tensor(np.asarray(Y), dtype=torch.long)

    @torch.no_grad()
    def run() -> float:
        return F.cross_entropy(model(X), Y).item()
    return run


def _mlp_tensors(params: dict) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(np.asarray(params[k])) for k in ("C", "W1", "b1", "W2", "b2"))


def sample_lecture(params: dict, n: int, *, block_size: int, seed: int = 0) -> list[list[int]]:
    """Lecture 2's sampler: one name at a time, one character per forward pass.

    Args:
        params: the lecture-2 MLP's C, W1, b1, W2, b2 (numpy or torch).
    Returns:
        n lists of token ids, each ending with the end token 0.
    """
    C, W1, b1, W2, b2 = _mlp_tensors(params)
    g = torch.Generator().manual_seed(seed)
    names = []
    with torch.no_grad():
        for _ in range(n):
            out, context = [], [0] * block_size
            while True:
                emb = C[torch.tensor([context])]  # (1, block_size, n_embd)
                h = torch.tanh(emb.view(1, -1) @ W1 + b1)
                logits = h @ W2 + b2
                probs = F.softmax(logits, dim=1)
                ix = torch.multinomial(probs, num_samples=1, generator=g).item()
                context = context[1:] + [ix]
                out.append(ix)
                if ix == 0:
                    break
            names.append(out)
    return names


@torch.no_grad()
def sample_batched(params: dict, n: int, *, block_size: int, max_len: int, seed: int = 0) -> torch.Tensor:
    """n names at once, one forward pass per position, until all have ended or max_len.

    Returns:
        int64 [n, steps]: each row's tokens, 0 after its end.
    """
    C, W1, b1, W2, b2 = _mlp_tensors(params)
    g = torch.Generator().manual_seed(seed)
    context = torch.zeros((n, block_size), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        h = torch.tanh(C[context].view(n, -1) @ W1 + b1)
        probs = F.softmax(h @ W2 + b2, dim=1)
        ix = torch.multinomial(probs, num_samples=1, generator=g).squeeze(1).masked_fill(done, 0)
        out.append(ix)
        context = torch.cat([context[:, 1:], ix[:, None]], dim=1)
        done |= ix == 0
        if done.all():
            break
    return torch.stack(out, dim=1)
