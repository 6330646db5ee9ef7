"""The sampler's draws follow the model's distribution, and the early exit changes nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.models import bigram
from makemore_jax.sample import draw_tokens, sample_ids

LOGITS = jnp.array([2.0, 0.5, -1.0, 1.0, 0.0, -3.0])
DRAWS = 200_000


def frequencies(tokens: np.ndarray, vocab: int) -> np.ndarray:
    return np.bincount(np.asarray(tokens), minlength=vocab) / tokens.size


def assert_follows(tokens, probs):
    """Every token's frequency within 5 standard errors of its probability (binomial)."""
    freq = frequencies(tokens, len(probs))
    se = np.sqrt(probs * (1 - probs) / tokens.size)
    np.testing.assert_array_less(np.abs(freq - probs), 5 * se + 1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_draws_follow_softmax_of_the_tempered_logits(temperature):
    logits = jnp.broadcast_to(LOGITS, (DRAWS, LOGITS.size))
    tokens = jax.jit(draw_tokens, static_argnums=(3,))(jax.random.key(0), logits, temperature, None)
    assert tokens.dtype == jnp.int32 and tokens.shape == (DRAWS,)
    assert_follows(tokens, np.asarray(jax.nn.softmax(LOGITS / temperature), np.float64))


def test_top_k_draws_only_the_k_likeliest_in_proportion():
    logits = jnp.broadcast_to(LOGITS, (DRAWS, LOGITS.size))
    tokens = np.asarray(draw_tokens(jax.random.key(1), logits, 1.0, 3))
    probs = np.exp(np.asarray(LOGITS, np.float64))
    probs[np.argsort(-probs)[3:]] = 0.0  # tokens 0, 3, 1 remain
    assert set(np.unique(tokens)) == {0, 1, 3}
    assert_follows(tokens, probs / probs.sum())


def test_a_certain_token_is_always_drawn():
    logits = jnp.full((1000, 5), -jnp.inf).at[:, 4].set(0.0)
    assert (np.asarray(draw_tokens(jax.random.key(2), logits)) == 4).all()


def test_whole_names_follow_the_bigram_chain():
    """Two-step names from a known bigram table: the pair frequencies are the table's products."""
    P = np.array([[0.0, 0.7, 0.3], [0.6, 0.1, 0.3], [0.5, 0.5, 0.0]])  # row: previous token; 0 ends
    params = {"log_P": jnp.log(jnp.asarray(P, jnp.float32) + 1e-30)}
    ids = np.asarray(sample_ids(bigram.apply, params, {}, jax.random.key(3), n=DRAWS, block_size=1, max_len=12))
    assert ids.shape == (DRAWS, 12)
    first, second = ids[:, 0], ids[:, 1]
    assert_follows(first, P[0])
    for a in (1, 2):  # the second token given the first
        assert_follows(second[first == a], P[a])
    # after the end token every position is 0
    ended = np.cumsum(ids == 0, axis=1) > 0
    assert (ids[ended] == 0).all()


def test_early_exit_pads_with_zeros_to_max_len():
    """Every name ends after one character; the loop stops there and the rest is 0."""
    P = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    params = {"log_P": jnp.log(jnp.asarray(P, jnp.float32) + 1e-30)}
    ids = np.asarray(sample_ids(bigram.apply, params, {}, jax.random.key(4), n=100, block_size=1, max_len=30))
    assert ids.shape == (100, 30)
    assert set(ids[:, 0]) == {1, 2} and (ids[:, 1:] == 0).all()


def test_decode_cuts_each_row_at_its_end_token():
    from makemore_jax.data import Vocab
    from makemore_jax.sample import decode
    vocab = Vocab.from_words(["abc", "ç"])  # ".", "a", "b", "c", "ç"
    ids = np.array([[1, 2, 0, 3], [4, 4, 4, 4], [0, 1, 1, 1], [3, 0, 0, 0]])
    assert decode(ids, vocab) == ["ab", "çççç", "", "c"]
    assert decode(ids[:, :1], vocab) == ["a", "ç", "", "c"]
    assert decode(np.zeros((0, 5), np.int32), vocab) == []
