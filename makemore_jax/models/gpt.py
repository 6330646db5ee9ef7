"""nanoGPT's character-level GPT: the transformer's options and training recipe that make it.

The model is `transformer` (one implementation) with nanoGPT's choices switched on; these
two dicts are the `gpt` registry entry's overrides of `transformer.Config` and of
`train.TrainConfig`. The sizes and the recipe are nanoGPT's CPU run of
config/train_shakespeare_char.py (its README: block_size 64, batch 12, 4 layers, 4 heads,
n_embd 128, 2000 iterations, lr decayed over 2000, dropout 0), with train.py's defaults that
file does not override (bias False, weight decay 0.1, beta1 0.9, grad_clip 1.0).

Where the two loops differ in small ways (the lead's port should say which it keeps):
  - nanoGPT runs iterations 0..max_iters inclusive, so 2001 optimiser steps;
  - its warmup is lr * (it + 1) / (warmup + 1), optax's warmup_cosine_decay_schedule
    lr * count / warmup (0 at the first step); both are lr at step 100 and follow the same
    cosine to min_lr at step 2000;
  - it estimates losses on 200 (CPU recipe: 20) random batches; we report exact losses.
"""

GPT_CONFIG = {
    "block_size": 64,  # characters of context
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "dropout": 0.0,  # the CPU recipe's; the GPU recipe uses 0.2
    "attn_dropout": True,  # nanoGPT's placement when dropout > 0
    "bias": False,
    "tie_embeddings": True,
    "gelu": "exact",
    "scaled_residual_init": True,
    "init": "gpt2",
}

GPT_TRAIN = {
    "optimizer": "adamw",
    "batch_size": 12,
    "steps": 2000,
    "lr": 1e-3,
    "b1": 0.9,
    "b2": 0.99,
    "weight_decay": 0.1,
    "decay": "matrices",  # nanoGPT's param groups: weights and embeddings decay, gains and biases do not
    "warmup_steps": 100,
    "min_lr_ratio": 0.1,  # cosine to 1e-4 at step 2000
    "clip_norm": 1.0,
}
