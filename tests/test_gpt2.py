"""GPT-2 as registry entries: the parameter counts of its four sizes (shapes only), its recipe and
defaults (tokens, dtype by backend, 524,288 tokens a step), FLOPs per token, the MFU table, and a
two-layer GPT-2 trained a few steps on the bundled corpus's GPT-2 tokens."""

import dataclasses
import math

import jax
import pytest

from makemore_jax import lifecycle, models, throughput
from makemore_jax.models import PerBackend, transformer
from makemore_jax.train import fit

GPT2_VOCAB = 50_257


def n_params(model, config):
    params, _ = jax.eval_shape(lambda key: model.init(key, config), jax.random.key(0))  # shapes only
    return params, sum(math.prod(p.shape) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("name, expected", [  # the padded vocabulary (50,304 rows); without it OpenAI's counts
    ("gpt2", 124_475_904), ("gpt2-medium", 354_871_296), ("gpt2-large", 774_090_240), ("gpt2-xl", 1_557_686_400)])
def test_parameter_counts_of_the_four_sizes(name, expected):
    model = models.get(name)
    config = model.make_config(vocab_size=GPT2_VOCAB)
    params, count = n_params(model, config)
    assert count == expected and params["wte"].shape == (50_304, config.n_embd) and "lm_head" not in params
    if name == "gpt2":  # OpenAI's 124M (Hugging Face's num_parameters) and nanoGPT's printed count (less wpe)
        assert count - 47 * 768 == 124_439_808
        assert count - math.prod(params["wpe"].shape) == 123_689_472


def test_gpt2_defaults_gpt2_tokens_the_recipe_and_bfloat16_on_accelerators(monkeypatch):
    model = models.get("gpt2")
    tc = lifecycle.make_settings(model, "", type("V", (), {"size": GPT2_VOCAB})(), {}, {})[1]
    assert tc.batch_size * tc.grad_accum * model.make_config().block_size == 524_288
    assert (tc.lr, tc.warmup_steps, tc.steps, tc.b2, tc.weight_decay) == (6e-4, 715, 19_073, 0.95, 0.1)
    assert model.tokenizer == "gpt2" and models.get("gpt").tokenizer is None
    assert model.make_config().dtype == "float32"  # the tests run on a CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert model.make_config().dtype == "bfloat16" and model.make_config(dtype="float32").dtype == "float32"
    assert model.shown_defaults()["dtype"] == PerBackend("bfloat16", "float32")
    short = lifecycle.make_settings(model, "", type("V", (), {"size": GPT2_VOCAB})(), {}, {"steps": 2})[1]
    assert short.warmup_steps == 2  # a short try of the recipe warms up over its steps


def test_flops_per_token_is_nanogpts_estimate():
    config = models.get("gpt2").make_config(vocab_size=GPT2_VOCAB)
    N = 123_689_472  # nanoGPT's get_num_params(): every parameter but wpe
    assert transformer.flops_per_token(config) == 6 * N + 12 * 12 * 12 * 64 * 1024
    untied = transformer.Config(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4, bias=False)
    head_and_blocks = 4 * 10 + 1 * (4 * 12 + 4 * 4 + 4 * 16 + 16 * 4) + 3 * 4  # lm_head, block matrices, 3 gains
    assert transformer.flops_per_token(untied) == 6 * head_and_blocks + 12 * 4 * 4


def test_peak_table_and_the_progress_line():
    assert throughput.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.5e12
    assert throughput.peak_flops("NVIDIA H100 PCIe", "float32") == 378e12
    assert throughput.peak_flops("NVIDIA A100-SXM4-40GB", "bfloat16") == 312e12
    assert throughput.peak_flops("NVIDIA L40S", "bfloat16") == 362e12 and throughput.peak_flops("cpu", "float32") is None
    speed = throughput.Throughput(tokens_per_step=1000, flops_per_token=1e6, peak=1e10)
    line = lifecycle.ProgressLine(100, 0, speed)
    assert line(10, jax.numpy.ones(3), 2.0).endswith("5.00 steps/s  5,000 tokens/s  MFU 50.0%")
    assert line(11, jax.numpy.ones(3), 4.0).endswith("2.00 s/step  500 tokens/s  MFU 5.0%")  # since the last line


def test_a_small_gpt2_learns_the_bundled_corpus_in_gpt2_tokens():
    """prepare reads Shakespeare in GPT-2's tokens by default; two layers at lr 1e-2 fall from ln(50,257) at once."""
    p = lifecycle.prepare("gpt2", overrides={"steps": 6, "n_layer": 2, "n_embd": 32, "n_head": 2, "block_size": 32,
                                             "batch_size": 2, "grad_accum": 2, "chunk_size": 1, "lr": 1e-2})
    assert p.vocab.size == GPT2_VOCAB and p.vocab.label == "gpt2" and p.train_config.warmup_steps == 6
    p.train_config = dataclasses.replace(p.train_config, warmup_steps=0)
    run = lifecycle.new_run(p, seed=0)
    speed = lifecycle.throughput(run)
    assert speed.tokens_per_step == 2 * 2 * 32 and speed.peak is None  # no peak known for a CPU
    assert speed.flops_per_token == transformer.flops_per_token(p.config)
    losses = []

    class Record:  # a loop callback
        def on_chunk(self, state, step, chunk_losses, elapsed):
            losses.extend(chunk_losses.tolist())
    fit(p.model, p.config, p.train_config, *p.splits["train"], run.state, callbacks=[Record()])
    assert abs(losses[0] - math.log(GPT2_VOCAB)) < 0.1 and losses[-1] < losses[0] - 0.5, losses  # 6 steps: -0.83
