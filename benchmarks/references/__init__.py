"""PyTorch reference training loops for the speed benchmarks, one module per lecture.

Each module has `loops(X, Y, config, *, batch_size=32, seed=0) -> {variant: run(n_steps) ->
last loss}` (X, Y: the model's own dataset; config: the JAX model's, whose sizes it copies)
and `split_loss(X, Y, config) -> () -> loss over the split`. `REFERENCES` maps a registry
model to its module. torch is optional (the `bench` extra: `pip install torch==2.13.0`, the
CPU build) and JAX processes import this package too, so the helpers import it when called.
"""

REFERENCES: dict[str, str] = {
    "bigram-nn": "torch_bigram", "gpt": "torch_gpt", "mlp": "torch_mlp", "mlp-bn": "torch_mlp",
    "mlp-deep": "torch_mlp", "bow": "torch_bow", "rnn": "torch_rnn", "gru": "torch_rnn",
    "transformer": "torch_transformer", "wavenet": "torch_wavenet",
}


def longs(*arrays):
    """numpy int arrays -> int64 tensors (sharing memory where they already are int64)."""
    import numpy as np
    import torch
    return tuple(torch.from_numpy(np.asarray(a, np.int64)) for a in arrays)


def ce(logits, y):
    """Mean cross-entropy of [..., V] logits against [...] targets, targets -1 ignored."""
    import torch.nn.functional as F
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1)


def loop(forward, X, Y, *, batch_size, seed, lr, optimizer=None, params=(), loss=ce):
    """run(n) -> last loss: n steps of loss(forward(xb), yb) on rows drawn with torch.randint
    (every row where batch_size is None). The update is `optimizer` at lr(step), or, without
    one, the lectures' `p.grad = None; loss.backward(); p.data += -lr(step) * p.grad` on params.
    """
    import torch
    g, step = torch.Generator().manual_seed(seed), [0]
    lr = lr if callable(lr) else (lambda _, v=lr: v)

    def run(n: int) -> float:
        for _ in range(n):
            ix = None if batch_size is None else torch.randint(0, X.shape[0], (batch_size,), generator=g)
            out = loss(forward(X if ix is None else X[ix]), Y if ix is None else Y[ix])
            if optimizer is None:
                for p in params:
                    p.grad = None
                out.backward()
                for p in params:
                    p.data += -lr(step[0]) * p.grad
            else:
                optimizer.zero_grad(set_to_none=True)
                out.backward()
                for group in optimizer.param_groups:
                    group["lr"] = lr(step[0])
                optimizer.step()
            step[0] += 1
        return out.item()
    return run


def mean_loss(model, X, Y, *, chunk: int | None = None) -> float:
    """Mean cross-entropy of `model` (eval mode, no grad) over every target of int64 (X, Y), -1 ignored."""
    import torch
    import torch.nn.functional as F
    was_training, total, count, chunk = model.training, 0.0, 0, chunk or len(X)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(X), chunk):
            logits, y = model(X[i:i + chunk]), Y[i:i + chunk]
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), ignore_index=-1,
                                     reduction="sum").item()
            count += int((y >= 0).sum())
    model.train(was_training)
    return total / count


def split_loss_of(model, X, Y):
    """() -> mean_loss of `model` over the whole split (X, Y) in one call (references' split_loss)."""
    X, Y = longs(X, Y)
    return lambda: mean_loss(model, X, Y)


def copy_params(pairs) -> None:
    """Copy JAX parameters into torch modules: (module, {"W", "b"}) for a Linear (W [in, ...] reshaped
    and transposed), (module, {"gamma", "beta"}) for a LayerNorm, (tensor, array) for a tensor."""
    import numpy as np
    import torch
    t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731 (a writable copy)
    with torch.no_grad():
        for m, p in pairs:
            if isinstance(m, torch.Tensor):
                m.copy_(t(p).reshape(m.shape))
            elif "gamma" in p:
                m.weight.copy_(t(p["gamma"]))
                if m.bias is not None:
                    m.bias.copy_(t(p["beta"]))
            else:
                m.weight.copy_(t(np.asarray(p["W"]).reshape(m.in_features, -1).T))
                if m.bias is not None:
                    m.bias.copy_(t(np.asarray(p["b"]).reshape(-1)))
