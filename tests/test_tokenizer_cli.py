"""`makemore-jax tokenizer train | encode | decode | show`, through cli.main, and its one-line errors."""

import numpy as np
import pytest

from makemore_jax import tokenizer
from makemore_jax.cli import main


def run(capsys, *argv):
    code = main(["tokenizer", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert (code, len(lines)) == (2, 1), err
    assert lines[0].startswith("makemore-jax: error: ")
    return lines[0].removeprefix("makemore-jax: error: ")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_text("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40)
    return path


@pytest.fixture(scope="module")
def trained_dir(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    assert main(["tokenizer", "train", "--data", str(text_file), "--vocab-size", "300", "--out", str(out),
                 "--special", "<|endoftext|>", "--quiet"]) == 0
    return out


def test_train_writes_minbpes_two_files_equal_to_the_python_api(trained_dir, text_file):
    assert sorted(p.name for p in trained_dir.iterdir()) == ["tokenizer.model", "tokenizer.vocab"]
    tok = tokenizer.load(str(trained_dir))
    expected = tokenizer.train(text_file.read_text(), 300, special=["<|endoftext|>"], progress=False)
    assert (tok.merges, tok.special, tok.pattern_name) == (expected.merges, expected.special, "gpt2")


def test_encode_prints_ids_and_a_summary_and_decode_inverts_it(capsys, trained_dir, text_file, tmp_path):
    code, out, err = run(capsys, "encode", "--tokenizer", trained_dir, "--data", text_file)
    ids = [int(w) for w in out.split()]
    tok = tokenizer.load(str(trained_dir))
    assert code == 0 and ids == tok.encode(text_file.read_text())
    n_bytes = len(text_file.read_bytes())
    assert err == f"{len(ids):,} tokens, {n_bytes:,} bytes, {n_bytes / len(ids):.2f} bytes per token\n"
    (tmp_path / "ids.txt").write_text(out)
    code, decoded, _ = run(capsys, "decode", "--tokenizer", trained_dir, "--data", tmp_path / "ids.txt")
    assert code == 0 and decoded == text_file.read_text()


def test_encode_bin_writes_uint16_as_nanogpt_does_and_decode_reads_it(capsys, text_file, tmp_path):
    code, out, _ = run(capsys, "encode", "--tokenizer", "gpt2", "--data", text_file, "--bin", tmp_path / "train.bin")
    ids = np.fromfile(tmp_path / "train.bin", dtype=np.uint16)
    assert code == 0 and out == "" and ids.tolist() == tokenizer.load("gpt2").encode(text_file.read_text())
    code, decoded, _ = run(capsys, "decode", "--tokenizer", "gpt2", "--data", tmp_path / "train.bin")
    assert decoded == text_file.read_text()


def test_show_brackets_each_token_off_a_terminal(capsys):
    code, out, _ = run(capsys, "show", "--tokenizer", "gpt2", "--text", "hello world 2024")
    assert code == 0 and out == "[hello][ world][ 2024]\n"
    code, out, _ = run(capsys, "show", "--tokenizer", "gpt2", "--text", "hi", "--color", "always")
    assert out.startswith("\x1b[48;5;") and "hi" in out


def test_special_tokens_are_refused_unless_asked_for(capsys, trained_dir, tmp_path):
    (tmp_path / "s.txt").write_text("one\nto be<|endoftext|>\n")
    line = error_line(capsys, "encode", "--tokenizer", trained_dir, "--data", tmp_path / "s.txt")
    assert line == (f"{tmp_path / 's.txt'}:2: the text holds the special token '<|endoftext|>'; --special allow "
                    "encodes it as its id, --special text as ordinary text")
    eot = tokenizer.load(str(trained_dir)).special["<|endoftext|>"]
    _, out, _ = run(capsys, "encode", "--tokenizer", trained_dir, "--data", tmp_path / "s.txt", "--special", "allow")
    assert eot in [int(w) for w in out.split()]
    _, out, _ = run(capsys, "encode", "--tokenizer", trained_dir, "--data", tmp_path / "s.txt", "--special", "text")
    assert eot not in [int(w) for w in out.split()]


def test_bad_input_is_one_line_and_status_2(capsys, tmp_path, text_file):
    assert error_line(capsys, "train", "--data", text_file, "--vocab-size", "100", "--out", tmp_path) == (
        "--vocab-size must be between 256 and 2^32, got 100")
    assert error_line(capsys, "train", "--data", text_file, "--vocab-size", "257", "--out", tmp_path,
                      "--special", "<a>", "--special", "<b>") == (
        "--vocab-size must be between 258 (256 bytes + 2 special tokens) and 2^32, got 257")
    (tmp_path / "bad.txt").write_bytes(b"fine\nbad \xff byte\n")
    assert error_line(capsys, "encode", "--tokenizer", "gpt2", "--data", tmp_path / "bad.txt") == (
        f"{tmp_path / 'bad.txt'}:2: not valid UTF-8 text")
    assert error_line(capsys, "train", "--data", tmp_path / "bad.txt", "--out", tmp_path) == (
        f"{tmp_path / 'bad.txt'}:2: not valid UTF-8 text")
    assert error_line(capsys, "encode", "--tokenizer", text_file, "--data", text_file) == (
        f"{text_file}:1: not a minbpe tokenizer model: expected 'minbpe v1', got 'To be, or not to be, that is the "
        "question:'")
    assert error_line(capsys, "encode", "--tokenizer", tmp_path / "nothing", "--data", text_file).startswith(
        f"{tmp_path / 'nothing'}: no such tokenizer")
    (tmp_path / "ids.txt").write_text("1 2\n3 x\n")
    assert error_line(capsys, "decode", "--tokenizer", "gpt2", "--data", tmp_path / "ids.txt") == (
        f"{tmp_path / 'ids.txt'}:2: 'x' is not a token id")
    (tmp_path / "ids.txt").write_text("1 70000\n")
    assert error_line(capsys, "decode", "--tokenizer", "gpt2", "--data", tmp_path / "ids.txt") == (
        f"{tmp_path / 'ids.txt'}: token id 70000 is not in the vocabulary (ids 0..50256)")


def test_ids_too_big_for_uint16_are_refused(capsys, tmp_path):
    big = tokenizer.Tokenizer({}, pattern=tokenizer.GPT2_PATTERN, special={"<|big|>": 70000})
    big.save(str(tmp_path / "tokenizer"))
    (tmp_path / "t.txt").write_text("a<|big|>")
    line = error_line(capsys, "encode", "--tokenizer", tmp_path, "--data", tmp_path / "t.txt", "--special", "allow",
                      "--bin", tmp_path / "t.bin")
    assert line == "token id 70000 does not fit uint16 (below 65,536) for --bin"
    assert not (tmp_path / "t.bin").exists()
