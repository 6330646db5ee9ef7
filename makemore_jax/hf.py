"""Hugging Face GPT-2 both ways: a transformers GPT-2 folder into a run, and a run into such a folder.

    makemore-jax convert --from-hf DIR --out RUN   DIR: config.json and model.safetensors (or its
                                                   shards' index, or pytorch_model.bin)
    makemore-jax convert --out RUN --to-hf DIR     DIR: config.json and model.safetensors, for
                                                   transformers.GPT2LMHeadModel.from_pretrained(DIR)

transformers' GPT-2 is our transformer with GPT-2's options, so converting renames and reshapes
only; HF's Conv1D weights are [in, out], as ours:

    transformers (GPT2LMHeadModel)                   ours (models/transformer.py)
    transformer.wte.weight [V, C]                    wte [V padded, C]     (padded rows zero; cut on export)
    transformer.wpe.weight [n_positions, C]          wpe [block_size, C]
    transformer.h.{i}.ln_1.weight, .bias [C]         blocks[i].ln_1.gamma, .beta    (ln_2, ln_f alike)
    transformer.h.{i}.attn.c_attn.weight [C, 3C]     blocks[i].attn.c_attn.W [C, 3, H, D]   (q | k | v, heads
    transformer.h.{i}.attn.c_attn.bias [3C]          blocks[i].attn.c_attn.b [3, H, D]       in order)
    transformer.h.{i}.attn.c_proj.weight, .bias      blocks[i].attn.c_proj.W [C, C], .b [C]
    transformer.h.{i}.mlp.c_fc.weight, .bias         blocks[i].mlp.c_fc.W [C, 4C], .b [4C]
    transformer.h.{i}.mlp.c_proj.weight, .bias       blocks[i].mlp.c_proj.W [4C, C], .b [C]
    lm_head.weight [V, C] (untied heads only)        lm_head.W [C, V padded]

Coming in, a folder is read only where transformers computes the same function: model_type
gpt2, GELU tanh ("gelu_new", "gelu_pytorch_tanh") or exact ("gelu"), LayerNorm epsilon 1e-5,
n_inner 4 n_embd, attention scaled by 1/sqrt(head size) alone, no cross-attention, GPT-2's
50,257 tokens. It becomes a `gpt2` run (vocabulary padded to 64, GPT-2's tokenizer) with
dropout 0 (nanoGPT's from_pretrained; give --dropout to fine-tune with some). The weights are
read with the safetensors package's numpy API; pytorch_model.bin, a pickle, only through
torch's weights-only loader (tensors and containers, never code) where torch is installed.

Going out: any run of the transformer's Config whose options GPT-2 has (learned positions,
LayerNorm, GELU, no QK-norm, no soft-cap). bias=False is written as zero biases and zero
LayerNorm shifts, exactly the same function (GPT-2 cannot leave them out); an untied head as
tie_word_embeddings false. The other options are refused by name.
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import checkpoint, models
from .data import DataError
from .models import transformer
from .settings import UsageError

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"  # a sharded model: tensor name -> shard file
TORCH_BIN = "pytorch_model.bin"
MODEL = "gpt2"  # the registry entry a converted model becomes
GELU_NAMES = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}  # HF's activation -> our gelu
EXPORTED_GELU = {"tanh": "gelu_new", "exact": "gelu"}
LAYER_NORM_EPS = 1e-5  # nn.layernorm's
PREFIX = "transformer."  # GPT2LMHeadModel's body; a bare GPT2Model's files lack it
BUFFERS = (".attn.bias", ".attn.masked_bias")  # old files' causal-mask buffers: not parameters
MIN_TORCH = (2, 6)  # the first torch whose weights-only loader is not open to code execution (CVE-2025-32434)


class ConversionError(DataError):
    """A folder that is not a GPT-2 this module can read; the message names the file and what differs."""


# ----------------------------------------------------------------------------- the names


def tensor_table(config: transformer.Config) -> dict[tuple, tuple[str, tuple[int, ...]]]:
    """Our parameter path -> (transformers' tensor name, its shape) for every tensor of a GPT-2 of `config`.

    Paths are key tuples into params ("blocks", i, "attn", "c_attn", "W"); the biases and shifts
    are listed whatever config.bias (a bias-free run exports them as zeros).
    """
    C, V = config.n_embd, config.vocab_size
    table = {("wte",): (PREFIX + "wte.weight", (V, C)), ("wpe",): (PREFIX + "wpe.weight", (config.block_size, C))}

    def norm(path: tuple, name: str):
        table[(*path, "gamma")] = (name + ".weight", (C,))
        table[(*path, "beta")] = (name + ".bias", (C,))

    for i in range(config.n_layer):
        h = f"{PREFIX}h.{i}."
        norm(("blocks", i, "ln_1"), h + "ln_1")
        norm(("blocks", i, "ln_2"), h + "ln_2")
        for layer, n_in, n_out in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C), ("mlp.c_fc", C, 4 * C),
                                   ("mlp.c_proj", 4 * C, C)):
            path = ("blocks", i, *layer.split("."))
            table[(*path, "W")] = (h + layer + ".weight", (n_in, n_out))
            table[(*path, "b")] = (h + layer + ".bias", (n_out,))
    norm(("ln_f",), PREFIX + "ln_f")
    if not config.tie_embeddings:
        table[("lm_head", "W")] = ("lm_head.weight", (V, C))
    return table


def _ours(path: tuple, hf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """transformers' tensor as our leaf of `shape`: wte's rows and the head's columns padded with zeros."""
    if path == ("wte",):
        return np.pad(hf, ((0, shape[0] - hf.shape[0]), (0, 0)))
    if path == ("lm_head", "W"):
        return np.pad(hf.T, ((0, 0), (0, shape[1] - hf.shape[0])))
    return hf.reshape(shape)


def _theirs(path: tuple, ours: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Our leaf as transformers' tensor of `shape` (the inverse of `_ours`)."""
    if path == ("wte",):
        return ours[:shape[0]]
    if path == ("lm_head", "W"):
        return ours[:, :shape[0]].T
    return ours.reshape(shape)


def _leaf(tree, path: tuple):
    for key in path:
        if isinstance(tree, dict) and key in tree or isinstance(tree, list) and key < len(tree):
            tree = tree[key]
        else:
            return None
    return tree


# ----------------------------------------------------------------------------- from transformers


def read_config(folder: str) -> transformer.Config:
    """The gpt2 Config of a transformers GPT-2 folder's config.json.

    Raises:
        ConversionError: no config.json, or one that is not a GPT-2 (the field that differs named).
    """
    path = os.path.join(folder, CONFIG)
    if not os.path.isdir(folder):
        raise ConversionError(f"{folder}: no such folder (expected a transformers GPT-2 folder: {CONFIG} and "
                              f"{SAFETENSORS})")
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except FileNotFoundError:
        raise ConversionError(f"{path}: missing; a transformers model folder holds {CONFIG} beside its "
                              "weights") from None
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(hf, dict):
        raise ConversionError(f"{path}: not a transformers config (a JSON object)")
    _check_gpt2(hf, path)
    try:
        return models.get(MODEL).make_config(
            vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"], n_head=hf["n_head"],
            n_embd=hf["n_embd"], gelu=GELU_NAMES[hf.get("activation_function", "gelu_new")], dropout=0.0,
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)))
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{path}: not a usable GPT-2 config ({e})") from None


def _check_gpt2(hf: dict, path: str) -> None:
    """Refuse a config.json transformers would not run as our GPT-2 computes, naming the field."""
    from .tokens import token_vocab
    n_vocab = token_vocab("gpt2", None).size
    missing = [k for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd") if k not in hf]
    if missing:
        raise ConversionError(f"{path}: {', '.join(missing)} missing; a GPT-2 config names its sizes")
    differences = [
        ("model_type", hf.get("model_type") == "gpt2", "gpt2"),
        ("activation_function", hf.get("activation_function", "gelu_new") in GELU_NAMES,
         " or ".join(GELU_NAMES)),
        ("layer_norm_epsilon", hf.get("layer_norm_epsilon", LAYER_NORM_EPS) == LAYER_NORM_EPS, LAYER_NORM_EPS),
        ("n_inner", hf.get("n_inner") in (None, 4 * hf["n_embd"]), "null (4 n_embd)"),
        ("scale_attn_weights", hf.get("scale_attn_weights", True) is True, True),
        ("scale_attn_by_inverse_layer_idx", not hf.get("scale_attn_by_inverse_layer_idx", False), False),
        ("add_cross_attention", not hf.get("add_cross_attention", False), False),
        ("vocab_size", hf["vocab_size"] == n_vocab, f"{n_vocab} (GPT-2's tokens)"),
    ]
    for name, ok, want in differences:
        if not ok:
            raise ConversionError(f"{path}: {name} is {json.dumps(hf.get(name))}; a GPT-2 this can read has "
                                  f"{json.dumps(want) if not isinstance(want, str) else want}")


def read_tensors(folder: str) -> dict[str, np.ndarray]:
    """Every tensor of the folder's weights by transformers' name, as numpy arrays in their saved dtype.

    model.safetensors (or the shards its index lists) first; else pytorch_model.bin through
    torch's weights-only loader (`_torch_tensors`).

    Raises:
        ConversionError: no weights file, or one that cannot be read.
    """
    single, index = os.path.join(folder, SAFETENSORS), os.path.join(folder, SAFETENSORS_INDEX)
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConversionError(f"{index}: not a safetensors index ({e})") from None
        files = [os.path.join(folder, name) for name in shards]
    elif os.path.isfile(os.path.join(folder, TORCH_BIN)):
        return _torch_tensors(os.path.join(folder, TORCH_BIN))
    else:
        raise ConversionError(f"{folder}: no {SAFETENSORS} (nor {SAFETENSORS_INDEX}, nor {TORCH_BIN}): no weights "
                              "of a transformers model there")
    safe_open = _safetensors().safe_open
    tensors = {}
    for path in files:
        try:
            with safe_open(path, framework="numpy") as f:
                tensors.update({name: f.get_tensor(name) for name in f.keys()})
        except Exception as e:  # safetensors raises its own SafetensorError (and OSError for a missing shard)
            raise ConversionError(f"{path}: not a readable safetensors file ({e})") from None
    return tensors


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise UsageError("the safetensors package is not installed: pip install 'makemore-jax[hf]'") from None
    return safetensors


def _torch_tensors(path: str) -> dict[str, np.ndarray]:
    """pytorch_model.bin's tensors (float32) through torch.load(weights_only=True): its restricted
    unpickler builds tensors and plain containers only, never an arbitrary object (a pickle's code)."""
    convert = f"save the model as safetensors ({SAFETENSORS}: transformers' model.save_pretrained(DIR) writes it)"
    try:
        import torch
    except ImportError:
        raise ConversionError(f"{path}: a PyTorch pickle, read only with torch's weights-only loader, and torch "
                              f"is not installed; install torch, or {convert}") from None
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCH:
        raise ConversionError(f"{path}: a PyTorch pickle; torch {torch.__version__}'s weights-only loader is not "
                              f"safe (CVE-2025-32434): install torch >= {'.'.join(map(str, MIN_TORCH))}, or {convert}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an UnpicklingError for anything but tensors, a RuntimeError for a torn file
        raise ConversionError(f"{path}: refused by torch's weights-only loader "
                              f"({str(e).strip().splitlines()[0][:200]}); {convert}") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    return {name: t.detach().to(torch.float32).numpy() for name, t in state.items() if isinstance(t, torch.Tensor)}


def params_from_tensors(tensors: dict[str, np.ndarray], config: transformer.Config, where: str) -> dict:
    """Our params (float32, shaped as transformer.init's) from transformers' tensors of a GPT-2 of `config`.

    Names without the "transformer." prefix (a GPT2Model's file) are read as with it; the old
    files' causal-mask buffers are skipped, and so is a tied head's copy of wte.

    Raises:
        ConversionError: a tensor missing, one GPT-2 has not, or a shape other than config.json's.
    """
    import jax
    named = {(name if name.startswith(PREFIX) or name.startswith("lm_head.") else PREFIX + name): array
             for name, array in tensors.items() if not name.endswith(BUFFERS)}
    if config.tie_embeddings:
        named.pop("lm_head.weight", None)  # a state dict's tied copy (pytorch_model.bin keeps it)
    table = tensor_table(config)
    expected = {name: shape for name, shape in table.values()}
    sizes = (f"n_layer {config.n_layer}, n_head {config.n_head}, n_embd {config.n_embd}, "
             f"n_positions {config.block_size}, vocab_size {config.vocab_size}")
    missing, unknown = sorted(expected.keys() - named.keys()), sorted(named.keys() - expected.keys())
    if missing:
        raise ConversionError(f"{where}: no tensor {missing[0]}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, "
                              f"which config.json's GPT-2 ({sizes}) has")
    if unknown:
        raise ConversionError(f"{where}: holds {unknown[0]}{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}, "
                              f"which config.json's GPT-2 ({sizes}) has not")
    for name, shape in expected.items():
        if tuple(named[name].shape) != shape:
            raise ConversionError(f"{where}: {name} has shape {list(named[name].shape)}, but config.json ({sizes}) "
                                  f"makes it {list(shape)}")
    template = jax.eval_shape(lambda: transformer.init(jax.random.key(0), config)[0])
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: _ours(_path(path), np.asarray(named[table[_path(path)][0]], np.float32), leaf.shape),
        template)


def _path(key_path) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "idx", None)) for k in key_path)


def from_hf(folder: str, out: str | None = None, *, overwrite: bool = False, seed: int = 42):
    """The run a transformers GPT-2 folder holds (model gpt2, GPT-2's tokenizer, step 0), saved into `out`.

    Its training settings are gpt2's defaults, for `train --resume`; `train --init-from` starts
    a fresh optimiser from its parameters instead (fine-tuning).

    Raises:
        ConversionError: a folder that is not a GPT-2 (what differs named); UsageError, CheckpointError: `out`
            holds a run already (without overwrite) or cannot be written.
    """
    import jax

    from .faults import FolderLock
    from .lifecycle import check_out, clear_out
    from .optim import TrainConfig
    from .run import Run
    from .tokens import token_vocab
    from .train import train_state_from
    saved = check_out(out, resume=False, overwrite=overwrite) if out is not None else False
    config = read_config(folder)
    params = params_from_tensors(read_tensors(folder), config, folder)
    model = models.get(MODEL)
    tc = TrainConfig(**model.train_defaults)
    ts = train_state_from(model, config, tc, params, jax.random.key(seed))
    info = {"data": None, "data_sha256": None, "seed": seed, "converted_from": os.path.abspath(folder)}
    run = Run(model, config, tc, token_vocab("gpt2", None), [], {}, ts, info=info)
    if out is not None:
        with FolderLock(out):
            if saved:
                clear_out(out)
            run.save(out)
    return run


# ----------------------------------------------------------------------------- to transformers


def check_expressible(run, where: str) -> None:
    """Refuse a run GPT-2 cannot express, naming the model or the option (as its flag on the command line)."""
    if run.model.Config is not transformer.Config:
        exportable = [name for name, m in models.REGISTRY.items() if m.Config is transformer.Config]
        raise UsageError(f"{where}: holds a {run.model.name} run; only the transformer models "
                         f"({', '.join(exportable)}) export to GPT-2, where their options are GPT-2's")
    c = run.config
    refusals = [("pos", c.pos != "learned", "learned positions only"),
                ("norm", c.norm != "layer", "LayerNorm only"),
                ("qk_norm", c.qk_norm, "no norm on q and k"),
                ("activation", c.activation != "gelu", "a GELU MLP only"),
                ("softcap", c.softcap > 0, "no soft-capped logits")]
    for name, refused, has in refusals:
        if refused:
            raise UsageError(f"{where}: GPT-2 cannot express the run's {{option}} (it has {has}); this run does not "
                             "export to transformers", option=(name, getattr(c, name)))


def hf_config(config: transformer.Config, vocab=None) -> dict:
    """The config.json of GPT2LMHeadModel for a run of `config` (check_expressible first)."""
    special = getattr(getattr(vocab, "tokenizer", None), "special", {})
    end = special.get("<|endoftext|>")  # GPT-2's tokenizer: id 50256, its bos and eos
    attn_pdrop = config.dropout if config.attn_dropout else 0.0
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": config.vocab_size,
            "n_positions": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": None, "activation_function": EXPORTED_GELU[config.gelu],
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": attn_pdrop,
            "layer_norm_epsilon": LAYER_NORM_EPS, "initializer_range": transformer.GPT2_STD,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "add_cross_attention": False, "tie_word_embeddings": config.tie_embeddings, "use_cache": True,
            "bos_token_id": end, "eos_token_id": end}


def tensors_from_params(params: dict, config: transformer.Config) -> dict[str, np.ndarray]:
    """transformers' tensors (float32) of our params: padded rows cut, absent biases (bias=False) zeros."""
    tensors = {}
    for path, (name, shape) in tensor_table(config).items():
        leaf = _leaf(params, path)
        tensors[name] = (np.zeros(shape, np.float32) if leaf is None
                         else np.ascontiguousarray(_theirs(path, np.asarray(leaf, np.float32), shape)))
    return tensors


def to_hf(run, folder: str, *, overwrite: bool = False, where: str = "the run") -> list[str]:
    """Write `run` (a Run) as a transformers GPT-2 folder: config.json and model.safetensors; their paths.

    Raises:
        UsageError: a run GPT-2 cannot express (check_expressible), or `folder` holding a model
            already (without overwrite).
    """
    import jax
    check_expressible(run, where)
    save = _safetensors().numpy.save
    paths = [os.path.join(folder, CONFIG), os.path.join(folder, SAFETENSORS)]
    if not overwrite and any(os.path.exists(p) for p in paths):
        raise UsageError(f"{folder}: holds a model already; replace it with {{overwrite:set}}, or choose another "
                         "folder", overwrite=("overwrite", True))
    checkpoint.check_out_dir(folder)
    tensors = tensors_from_params(jax.device_get(run.state.params), run.config)
    checkpoint.atomic_write(paths[1], save(tensors, metadata={"format": "pt"}))  # transformers reads "pt" files
    text = json.dumps(hf_config(run.config, run.vocab), indent=2) + "\n"
    checkpoint.atomic_write(paths[0], text.encode())
    return paths


def describe(run) -> str:
    """One line on a converted or exported run: its model, sizes and parameters."""
    import jax
    c = run.config
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(run.state.params))
    return (f"{run.model.name}: {c.n_layer} layers, {c.n_head} heads, n_embd {c.n_embd}, block {c.block_size}, "
            f"{run.vocab.describe()}, {n:,} parameters")
