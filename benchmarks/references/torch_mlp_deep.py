"""PyTorch eager reference: the lecture-3 deep MLP ("mlp-deep"; Karpathy, makemore part 3).

Embedding table C [vocab, n_embd] then 5 x [Linear(no bias) -> BatchNorm1d -> Tanh] of width
n_hidden, then Linear(n_hidden -> vocab, no bias) -> BatchNorm1d. Init as in the lecture:
Linear weights ``randn(fan_in, fan_out) / fan_in**0.5`` scaled by the tanh gain 5/3, and the
last BatchNorm's gamma scaled by 0.1 (a less confident output layer). The gain follows the
lecture's code literally: ``for layer in layers[:-1]: if isinstance(layer, Linear):
layer.weight *= 5/3`` skips only the final BatchNorm, so the output Linear gets the gain too
(it feeds a BatchNorm, so this changes its gradient scale, not the forward pass).
47,024 parameters for vocab 27, block 3, n_embd 10, width 100 (the lecture's number).

Two variants of the same network, same init (identical random draws) and same loop
(batch 32, manual SGD ``p.data += -lr * p.grad`` with lr 0.1, then 0.01 from ``decay_step``):

* ``style="lecture"``: the lecture's own ``Linear``, ``BatchNorm1d`` and ``Tanh`` classes,
  kept in a list and called in a python loop. Its BatchNorm normalises with the unbiased
  ``x.var(0, keepdim=True)`` in training mode, as the lecture does.
* ``style="nn"``: ``torch.nn.Sequential`` of ``nn.Linear(bias=False)``, ``nn.BatchNorm1d``,
  ``nn.Tanh``. ``nn.BatchNorm1d`` normalises with the biased batch variance in training mode
  (its running_var update uses the unbiased one, as the lecture's does), so the two variants'
  losses agree closely but not bit for bit.

torch is not a project dependency: it comes from the optional ``bench`` extra. On the
project's machines install the CPU build with ``pip install torch==2.13.0`` (a plain
``pip install torch`` pulls a multi-GB CUDA build). The benchmark runner imports this module
only when torch is importable.

Parameters come back in the lecture's layout whatever the style: ``"C"``,
``"layers.{i}.weight"`` [fan_in, fan_out] for the Linear at list index i,
``"layers.{i}.gamma"`` / ``"layers.{i}.beta"`` for the BatchNorm at index i; the BatchNorm
running statistics come back separately as ``"layers.{i}.running_mean"`` /
``"layers.{i}.running_var"`` (shape [dim]).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LECTURE_PARAM_COUNT = 47_024  # vocab 27, block 3, n_embd 10, width 100, 6 Linear + 6 BatchNorm
N_HIDDEN_BLOCKS = 5


# ----------------------------------------------------------------------------- lecture classes


class Linear:
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
        self.eps = eps
        self.momentum = momentum
        self.training = True
        # parameters (trained with backprop)
        self.gamma = torch.ones(dim)
        self.beta = torch.zeros(dim)
        # buffers (trained with a running 'momentum update')
        self.running_mean = torch.zeros(dim)
        self.running_var = torch.ones(dim)

    def __call__(self, x):
        # calculate the forward pass
        if self.training:
            xmean = x.mean(0, keepdim=True)  # batch mean
            xvar = x.var(0, keepdim=True)  # batch variance (unbiased, as in the lecture)
        else:
            xmean = self.running_mean
            xvar = self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # normalize to unit variance
        self.out = self.gamma * xhat + self.beta
        # update the buffers
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


# ----------------------------------------------------------------------------- building


def _layer_dims(vocab_size: int, block_size: int, n_embd: int, n_hidden: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each Linear, in order."""
    dims = [(block_size * n_embd, n_hidden)] + [(n_hidden, n_hidden)] * (N_HIDDEN_BLOCKS - 1)
    return dims + [(n_hidden, vocab_size)]


def _build_lecture(vocab_size, block_size, n_embd, n_hidden, g):
    C = torch.randn((vocab_size, n_embd), generator=g)
    dims = _layer_dims(vocab_size, block_size, n_embd, n_hidden)
    layers = []
    for k, (fan_in, fan_out) in enumerate(dims):
        layers += [Linear(fan_in, fan_out, bias=False, g=g), BatchNorm1d(fan_out)]
        if k < len(dims) - 1:
            layers.append(Tanh())
    with torch.no_grad():
        # last layer: make less confident
        layers[-1].gamma *= 0.1
        # all other layers: apply gain (layers[:-1] drops only the last BatchNorm, so this
        # includes the output Linear, as in the lecture)
        for layer in layers[:-1]:
            if isinstance(layer, Linear):
                layer.weight *= 5 / 3
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True
    return C, layers, parameters


def _build_nn(vocab_size, block_size, n_embd, n_hidden, g):
    """The same network as torch.nn modules, initialised from the same random draws."""
    C = torch.randn((vocab_size, n_embd), generator=g)
    dims = _layer_dims(vocab_size, block_size, n_embd, n_hidden)
    mods = []
    for k, (fan_in, fan_out) in enumerate(dims):
        lin = nn.Linear(fan_in, fan_out, bias=False)
        w = torch.randn((fan_in, fan_out), generator=g) / fan_in**0.5
        w *= 5 / 3  # every Linear, the output one included, as the lecture's layers[:-1] loop does
        with torch.no_grad():
            lin.weight.copy_(w.T)  # nn.Linear stores [fan_out, fan_in]
        mods += [lin, nn.BatchNorm1d(fan_out)]  # eps 1e-5, momentum 0.1 (defaults)
        if k < len(dims) - 1:
            mods.append(nn.Tanh())
    model = nn.Sequential(*mods)
    with torch.no_grad():
        model[-1].weight *= 0.1  # last BatchNorm's gamma
    C.requires_grad = True
    parameters = [C] + list(model.parameters())
    return C, model, parameters


def _export_lecture(C, layers):
    params, buffers = {"C": C.detach().numpy().copy()}, {}
    for i, layer in enumerate(layers):
        if isinstance(layer, Linear):
            params[f"layers.{i}.weight"] = layer.weight.detach().numpy().copy()
        elif isinstance(layer, BatchNorm1d):
            params[f"layers.{i}.gamma"] = layer.gamma.detach().numpy().copy()
            params[f"layers.{i}.beta"] = layer.beta.detach().numpy().copy()
            buffers[f"layers.{i}.running_mean"] = layer.running_mean.reshape(-1).numpy().copy()
            buffers[f"layers.{i}.running_var"] = layer.running_var.reshape(-1).numpy().copy()
    return params, buffers


def _export_nn(C, model):
    params, buffers = {"C": C.detach().numpy().copy()}, {}
    for i, mod in enumerate(model):
        if isinstance(mod, nn.Linear):
            params[f"layers.{i}.weight"] = mod.weight.detach().T.numpy().copy()
        elif isinstance(mod, nn.BatchNorm1d):
            params[f"layers.{i}.gamma"] = mod.weight.detach().numpy().copy()
            params[f"layers.{i}.beta"] = mod.bias.detach().numpy().copy()
            buffers[f"layers.{i}.running_mean"] = mod.running_mean.numpy().copy()
            buffers[f"layers.{i}.running_var"] = mod.running_var.numpy().copy()
    return params, buffers


def param_count(vocab_size: int = 27, block_size: int = 3, *, n_embd: int = 10, n_hidden: int = 100) -> int:
    """Trainable parameter count of both variants; checks them against each other and,
    for the lecture's sizes, against the lecture's 47,024."""
    _, _, p_lecture = _build_lecture(vocab_size, block_size, n_embd, n_hidden, torch.Generator().manual_seed(0))
    _, _, p_nn = _build_nn(vocab_size, block_size, n_embd, n_hidden, torch.Generator().manual_seed(0))
    n = sum(p.nelement() for p in p_lecture)
    assert n == sum(p.nelement() for p in p_nn), "lecture and nn variants differ in size"
    if (vocab_size, block_size, n_embd, n_hidden) == (27, 3, 10, 100):
        assert n == LECTURE_PARAM_COUNT, f"expected {LECTURE_PARAM_COUNT} parameters, got {n}"
    return n


# ----------------------------------------------------------------------------- training


def train(Xtr: np.ndarray, Ytr: np.ndarray, *, vocab_size: int, steps: int, batch_size: int = 32,
          style: str = "lecture", seed: int = 2147483647, decay_step: int = 100_000,
          n_embd: int = 10, n_hidden: int = 100) -> dict:
    """Train the lecture-3 deep net for ``steps`` minibatch SGD steps.

    Args:
        Xtr: int array [N, block_size] of contexts. Ytr: int array [N] of next characters.
        style: "lecture" (the lecture's hand-written layer classes) or "nn" (torch.nn).

    Returns:
        {"seconds": wall time of the training loop alone (data conversion and init excluded),
         "steps_per_s", "first_loss" and "final_loss": the first and last minibatch losses,
         "params" and "buffers": numpy arrays in the lecture's layout (see the module
         docstring), "param_count", "style", "num_threads": torch.get_num_threads()}.
    """
    if style not in ("lecture", "nn"):
        raise ValueError(f"style must be 'lecture' or 'nn', got {style!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    Xtr = torch.from_numpy(np.ascontiguousarray(Xtr)).long()
    Ytr = torch.from_numpy(np.ascontiguousarray(Ytr)).long()
    block_size = Xtr.shape[1]

    g = torch.Generator().manual_seed(seed)
    if style == "lecture":
        C, layers, parameters = _build_lecture(vocab_size, block_size, n_embd, n_hidden, g)

        def forward(x):
            for layer in layers:
                x = layer(x)
            return x
    else:
        C, model, parameters = _build_nn(vocab_size, block_size, n_embd, n_hidden, g)
        model.train()
        forward = model

    first_loss = None
    t0 = time.perf_counter()
    for i in range(steps):
        # minibatch construct
        ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
        # forward pass
        emb = C[Xb]  # embed the characters into vectors
        x = emb.view(emb.shape[0], -1)  # concatenate the vectors
        x = forward(x)
        loss = F.cross_entropy(x, Yb)  # loss function
        if i == 0:
            first_loss = loss.item()
        # backward pass
        for p in parameters:
            p.grad = None
        loss.backward()
        # update
        lr = 0.1 if i < decay_step else 0.01  # step learning rate decay
        for p in parameters:
            p.data += -lr * p.grad
    final_loss = loss.item()
    seconds = time.perf_counter() - t0

    params, buffers = _export_lecture(C, layers) if style == "lecture" else _export_nn(C, model)
    return {
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "first_loss": first_loss,
        "final_loss": final_loss,
        "params": params,
        "buffers": buffers,
        "param_count": sum(p.nelement() for p in parameters),
        "style": style,
        "num_threads": torch.get_num_threads(),
    }


@torch.no_grad()
def eval_loss(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, *,
              buffers: dict[str, np.ndarray], eps: float = 1e-5) -> float:
    """Mean cross-entropy over a whole split in eval mode (BatchNorm uses running statistics).

    Works on the output of ``train`` of either style: ``eval_loss(r["params"], X, Y,
    buffers=r["buffers"])``.
    """
    t = lambda a: torch.as_tensor(np.asarray(a))  # noqa: E731
    X = torch.from_numpy(np.ascontiguousarray(X)).long()
    Y = torch.from_numpy(np.ascontiguousarray(Y)).long()
    emb = t(params["C"])[X]
    x = emb.view(emb.shape[0], -1)
    linears = sorted(int(k.split(".")[1]) for k in params if k.endswith(".weight"))
    for n, i in enumerate(linears):
        x = x @ t(params[f"layers.{i}.weight"])
        j = i + 1  # the BatchNorm right after each Linear
        xhat = (x - t(buffers[f"layers.{j}.running_mean"])) / torch.sqrt(t(buffers[f"layers.{j}.running_var"]) + eps)
        x = t(params[f"layers.{j}.gamma"]) * xhat + t(params[f"layers.{j}.beta"])
        if n < len(linears) - 1:
            x = torch.tanh(x)
    return F.cross_entropy(x, Y).item()
