"""GPT-2 as OpenAI released it and nanoGPT / build-nanogpt rebuild it: the transformer's options and recipe.

The model is `transformer` with GPT-2's choices: learned positions, LayerNorm, biases, the
head tied to wte, the tanh GELU, N(0, 0.02) weights with the residual projections at
0.02 / sqrt(2 n_layer). The vocabulary (GPT-2's tokenizer, 50,257 tokens) is padded to a
multiple of 64 (50,304) for the matmuls, as nanoGPT does; the padding is never sampled.

The recipe is build-nanogpt's (train_gpt2.py): AdamW with betas 0.9/0.95, weight decay 0.1
on the matrices and embeddings, lr 6e-4 with 715 warmup steps and a cosine to 10% at step
19,073, the gradient clipped to norm 1.0, and 524,288 tokens a step: 16 windows of 1024
tokens a micro-batch, 32 micro-batches accumulated (--grad-accum). Matmuls in bfloat16 on a
GPU or TPU, float32 on a CPU (`PerBackend`, resolved when the config is made).

Each size is its own registry entry, named as Hugging Face and nanoGPT's from_pretrained
name them (`NAMES`): gpt2, gpt2-medium, gpt2-large, gpt2-xl; the tokenizer is GPT-2's.
"""

from .backend import PerBackend

SIZES = {  # GPT-2's four sizes (OpenAI's; nanoGPT's from_pretrained table)
    "small": {"n_layer": 12, "n_head": 12, "n_embd": 768},  # 124M
    "medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},  # 350M
    "large": {"n_layer": 36, "n_head": 20, "n_embd": 1280},  # 774M
    "xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600},  # 1558M
}

GPT2_CONFIG = {
    **SIZES["small"],
    "block_size": 1024,
    "dropout": 0.0,
    "bias": True,
    "tie_embeddings": True,
    "gelu": "tanh",
    "scaled_residual_init": True,
    "init": "gpt2",
    "pad_vocab_to": 64,
    "dtype": PerBackend(accelerator="bfloat16", cpu="float32"),
}
NAMES = {"gpt2": "small", "gpt2-medium": "medium", "gpt2-large": "large", "gpt2-xl": "xl"}  # registry name -> size
TOKENIZER = "gpt2"  # GPT-2's 50,257 tokens (tokens.py)

GPT2_TRAIN = {
    "optimizer": "adamw",
    "steps": 19_073,  # 10B tokens at 524,288 a step
    "lr": 6e-4,
    "b1": 0.9,
    "b2": 0.95,
    "weight_decay": 0.1,
    "decay": "matrices",
    "warmup_steps": 715,
    "min_lr_ratio": 0.1,
    "clip_norm": 1.0,
    "batch_size": 16,  # windows of a micro-batch ...
    "grad_accum": 32,  # ... and micro-batches a step: 16 x 32 x 1024 = 524,288 tokens
    "chunk_size": 10,  # steps per dispatch and per log line (each a second or more on one GPU)
    "eval_train": False,  # the exact loss of a large training split would take as long as training
}


def config_defaults(size: str) -> dict:
    """The registry entry's overrides of transformer.Config for one of SIZES."""
    return {**GPT2_CONFIG, **SIZES[size]}
