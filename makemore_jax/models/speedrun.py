"""The speedrun GPT: the fastest recipe found to nanoGPT's CPU loss on the Shakespeare corpus.

The model is `transformer` (one implementation) with the options of the GPT-2 speedruns
(modded-nanogpt, nanochat) switched on; these two dicts are the `gpt-speedrun` registry
entry's overrides of `transformer.Config` and of `optim.TrainConfig`:
  - rotary position embeddings instead of learned ones (no wpe);
  - RMSNorm with no learned gain, and QK-norm before the scores;
  - a ReLU² MLP;
  - an untied output head; attention and MLP output projections initialised at zero;
  - Muon (orthogonalised momentum) on the blocks' matrices and AdamW on the embeddings, the
    head and the rest (optim.param_groups), under a warmup-stable-decay schedule with no
    warmup that decays over the second half of the run;
  - two blocks instead of four, and a wider batch than nanoGPT's (32 windows of 64
    characters), over which Muon's per-step orthogonalisation is spread; 130 steps;
  - AdamW's group (the embeddings and the head) at a peak lr of 0.012 (gpt's: 1e-3).
benchmarks/speedrun.py races it against the nanoGPT reference and measures which of these
changes pay at this size (benchmarks/ABLATIONS.md, "Speedrun"); logit soft-capping, which
did not, is left out (`--softcap 15` puts it back).
At the end only the validation split is evaluated exactly (eval_train False): the
training split's exact loss would cost a tenth of the run.
"""

SPEEDRUN_CONFIG = {
    "block_size": 64,
    "n_layer": 2,  # two blocks: half gpt's step, and at this budget as good as three or four
    "n_head": 4,
    "n_embd": 128,
    "dropout": 0.0,
    "bias": False,
    "init": "gpt2",
    "pos": "rotary",
    "norm": "rms-nogain",  # RMSNorm with no learned gain
    "qk_norm": True,
    "activation": "relu2",
    "tie_embeddings": False,
    "zero_init_proj": True,
}

SPEEDRUN_TRAIN = {
    "optimizer": "muon",
    "batch_size": 32,
    "steps": 130,
    "lr": 0.012,  # the AdamW group's peak (embeddings, head)
    "matrix_lr": 0.02,  # the Muon group's peak (the blocks' matrices)
    "b1": 0.9,
    "b2": 0.99,
    "weight_decay": 0.0,
    "schedule": "wsd",
    "warmup_steps": 0,
    "decay_fraction": 0.5,
    "min_lr_ratio": 0.1,
    "clip_norm": 1.0,
    "chunk_size": 65,  # two chunks: one compiled program
    "eval_train": False,
}
