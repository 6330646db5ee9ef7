"""Hugging Face GPT-2 both ways (hf.py): our logits equal transformers' to 1e-4 coming in and going out.

The GPT-2s are small random GPT2Configs saved by transformers inside the test (no download),
every parameter moved off its init so that a misplaced bias or gain shows in the logits.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from conftest import assert_trees_close  # noqa: E402
from makemore_jax import hf, models, train_model  # noqa: E402
from makemore_jax.cli import main  # noqa: E402
from makemore_jax.data import Vocab  # noqa: E402
from makemore_jax.run import Run, from_checkpoint  # noqa: E402
from makemore_jax.settings import SettingError, UsageError  # noqa: E402
from makemore_jax.train import TrainConfig, TrainState  # noqa: E402

TOLERANCE = 1e-4
SIZES = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
IDS = np.array([15496, 11, 995, 0, 50256, 3, 7, 1000, 50000, 42])  # "Hello, world!", <|endoftext|>, ...


def hf_logits(folder, ids) -> np.ndarray:
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids)[None])).logits[0].numpy()


def save_random_gpt2(folder, **config) -> None:
    """A random GPT-2 saved by transformers, every tensor moved off its init: N(0, 0.1^2), the LayerNorms'
    gains N(1, 0.1^2), so a misplaced bias or gain shows in the logits."""
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SIZES, **config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if ".ln_" in name and name.endswith("weight") else 0.0, 0.1)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "gpt2"
    model = save_random_gpt2(folder)
    torch.save(model.state_dict(), tmp_path_factory.getbasetemp() / "state.bin")
    return folder


@pytest.fixture(scope="module")
def converted(gpt2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "gpt2"
    assert main(["convert", "--from-hf", str(gpt2_dir), "--out", str(out)]) == 0
    return out


def test_from_hf_logits_equal_transformers(gpt2_dir, converted):
    run = from_checkpoint(str(converted))
    assert (run.model.name, run.config.vocab_size, run.state.params["wte"].shape) == ("gpt2", 50257, (50304, 32))
    assert run.vocab.describe() == "vocabulary 50,257 (gpt2 tokens)" and int(run.state.step) == 0
    ours = run.logits(IDS)
    assert ours.shape == (len(IDS), 50257) and ours.dtype == np.float32
    theirs = hf_logits(gpt2_dir, IDS)
    assert np.abs(theirs).max() > 1  # the random weights give logits far from uniform
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(np.asarray(run.state.params["wte"][50257:]), 0)  # the padding


def test_to_hf_round_trip_loads_in_transformers(gpt2_dir, converted, tmp_path, capsys):
    assert main(["convert", "--out", str(converted), "--to-hf", str(tmp_path / "back")]) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_allclose(hf_logits(tmp_path / "back", IDS), hf_logits(gpt2_dir, IDS), atol=TOLERANCE, rtol=0)
    saved = hf.read_tensors(str(gpt2_dir))
    back = hf.read_tensors(str(tmp_path / "back"))
    assert back.keys() == saved.keys()  # tied: no lm_head.weight, as transformers saves it
    for name in saved:
        np.testing.assert_array_equal(back[name], saved[name])


def test_pytorch_bin_reads_as_safetensors(gpt2_dir, tmp_path):
    """pytorch_model.bin (a state dict, tied head copy and all) through torch's weights-only loader."""
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(gpt2_dir / "config.json", folder)
    shutil.copy(gpt2_dir.parent.parent / "state.bin", folder / "pytorch_model.bin")
    config = hf.read_config(str(gpt2_dir))
    from_bin = hf.params_from_tensors(hf.read_tensors(str(folder)), config, str(folder))
    from_safetensors = hf.params_from_tensors(hf.read_tensors(str(gpt2_dir)), config, str(gpt2_dir))
    assert_trees_close(from_bin, from_safetensors, rtol=0)


def small_run(model_name: str, vocab_size: int = 65, **config) -> Run:
    """A run of `model_name` made in Python (no training, no dropout), every parameter random: N(0, 0.1^2),
    the norms' gains N(1, 0.1^2)."""
    model = models.get(model_name)
    config = model.make_config(vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=16, **config)
    rng = np.random.default_rng(1)  # numpy's draws: no random-number program for XLA to compile
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(1), config)[0])
    params = jax.tree_util.tree_map_with_path(
        lambda path, leaf: rng.normal(1.0 if path[-1].key == "gamma" else 0.0, 0.1, leaf.shape).astype(np.float32),
        shapes)
    ts = TrainState(step=0, params=params, model_state={}, opt_state=(), key=jax.random.key(0))  # nothing trains it
    vocab = Vocab(tuple(chr(32 + i) for i in range(vocab_size)), boundary=False)
    return Run(model, config, TrainConfig(**model.train_defaults), vocab, [], {}, ts)


def test_nanogpt_run_exports_with_zero_biases_and_exact_gelu(tmp_path):
    """gpt (bias False, exact GELU), untied: GPT-2 with zero biases, activation "gelu", its own lm_head."""
    run = small_run("gpt", tie_embeddings=False, pad_vocab_to=64)
    assert "b" not in run.state.params["blocks"][0]["mlp"]["c_fc"]
    hf.to_hf(run, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["activation_function"], config["tie_word_embeddings"], config["vocab_size"]) == ("gelu", False, 65)
    ids = np.arange(16) * 4
    np.testing.assert_allclose(hf_logits(tmp_path, ids), run.logits(ids), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("option, flag", [({"pos": "rotary"}, "--pos rotary"), ({"norm": "rms"}, "--norm rms"),
                                          ({"qk_norm": True}, "--qk-norm"), ({"activation": "relu2"}, "--activation relu2"),
                                          ({"softcap": 15.0}, "--softcap 15.0")])
def test_to_hf_refuses_what_gpt2_cannot_express(option, flag):
    model = models.get("gpt")
    config = model.make_config(vocab_size=65, **option)
    run = Run(model, config, TrainConfig(), None, [], {}, None)
    with pytest.raises(UsageError) as e:
        hf.check_expressible(run, "out/x")
    assert e.value.as_flags().startswith(f"out/x: GPT-2 cannot express the run's {flag} (")
    mlp = Run(models.get("mlp"), models.get("mlp").make_config(vocab_size=27), TrainConfig(), None, [], {}, None)
    with pytest.raises(UsageError, match="holds a mlp run; only the transformer models"):
        hf.check_expressible(mlp, "out/x")


def write_config(folder, **changes):
    """A copy of config.json in `folder` with `changes` (None deletes a key)."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "bert"}, "config.json: model_type is \"bert\"; a GPT-2 this can read has gpt2"),
    ({"activation_function": "relu"}, "activation_function is \"relu\"; a GPT-2 this can read has gelu_new or "),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon is 1e-06; a GPT-2 this can read has 1e-05"),
    ({"vocab_size": 1000}, "vocab_size is 1000; a GPT-2 this can read has 50257 (GPT-2's tokens)"),
    ({"n_head": None}, "config.json: n_head missing"),
    ({"n_positions": 32}, "transformer.wpe.weight has shape [64, 32], but config.json (n_layer 2, n_head 2, n_embd 32, "
                          "n_positions 32, vocab_size 50257) makes it [32, 32]"),
    ({"n_layer": 3}, "no tensor transformer.h.2.attn.c_attn.bias (and 11 more), which config.json's GPT-2"),
    ({"n_layer": 1}, "holds transformer.h.1.attn.c_attn.bias (and 11 more), which config.json's GPT-2"),
])
def test_not_gpt2_is_one_line_and_status_2(gpt2_dir, tmp_path, capsys, changes, message):
    folder = shutil.copytree(gpt2_dir, tmp_path / "model")
    write_config(folder, **changes)
    assert main(["convert", "--from-hf", str(folder), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_missing_weights_and_folders_are_named(gpt2_dir, tmp_path, capsys):
    folder = shutil.copytree(gpt2_dir, tmp_path / "model")
    os.remove(folder / "model.safetensors")
    for source, message in ((folder, "no model.safetensors (nor model.safetensors.index.json, nor pytorch_model.bin)"),
                            (tmp_path / "nowhere", "no such folder")):
        assert main(["convert", "--from-hf", str(source), "--out", str(tmp_path / "run")]) == 2
        assert message in capsys.readouterr().err


def test_logits_refuse_a_sequence_too_long(converted):
    run = from_checkpoint(str(converted))  # the program that made its template is cached: quick
    with pytest.raises(SettingError, match="1 to 64 .block_size."):
        run.logits(np.zeros(65, int))
    with pytest.raises(SettingError, match="holds 50257, outside the vocabulary's 0..50256"):
        run.logits([50257])


# ----------------------------------------------------------------------------- fine-tuning: train --init-from


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "shakespeare.txt"
    with open(os.path.join(os.path.dirname(__file__), "..", "data", "shakespeare.txt"), encoding="utf-8") as f:
        path.write_text(f.read(4000), encoding="utf-8")
    return path


def test_init_from_starts_at_the_converted_parameters(converted, text_file):
    """A fresh run at step 0 holding the converted parameters (wpe cropped to the smaller block); one step
    at lr 1e-9 leaves them within 1e-6, where an init of its own would be 0.1 away."""
    source = from_checkpoint(str(converted)).state.params
    run = train_model(init_from=str(converted), model="gpt2", data=str(text_file), steps=1, batch_size=2,
                      block_size=32, lr=1e-9, warmup_steps=0, min_lr_ratio=1.0, eval_train=False)
    assert int(run.state.step) == 1 and run.info["init_from"] == os.path.abspath(converted)
    assert run.config.block_size == 32 and run.vocab.describe() == "vocabulary 50,257 (gpt2 tokens)"
    cropped = {**source, "wpe": source["wpe"][:32]}
    assert_trees_close(run.state.params, cropped, rtol=0, atol=1e-6)
    assert set(run.info["results"]) == {"val_loss"} and 10 < run.info["results"]["val_loss"] < 12  # ~ln 50257


@pytest.mark.parametrize("settings, message", [
    ({"tokenizer": "char"}, "the run there has vocabulary 50,257 (gpt2 tokens), and {text} makes vocabulary "),
    ({"n_layer": 3, "warmup_steps": 0}, "its parameters do not fit the model settings given "
                                        "(blocks/2/attn/c_attn/W: absent there, shape [32, 3, 2, 16] here)"),
    ({"model": "gpt"}, "holds a gpt2 run, not a gpt; leave model out to start from it"),
])
def test_init_from_refusals(converted, text_file, settings, message):
    settings = {"model": "gpt2", **settings}
    with pytest.raises(UsageError) as e:
        train_model(init_from=str(converted), data=str(text_file), steps=1, batch_size=2, **settings)
    assert message.format(text=text_file) in str(e.value)
