"""`makemore-jax tokenizer train | encode | decode | show`: the tokenizer on the command line.

    makemore-jax tokenizer train --data FILE --vocab-size 512 --out DIR [--pattern gpt2|gpt4|none]
    makemore-jax tokenizer encode --tokenizer DIR|gpt2 --data FILE [--bin train.bin]
    makemore-jax tokenizer decode --tokenizer DIR|gpt2 --data ids.txt|train.bin
    makemore-jax tokenizer show --tokenizer DIR|gpt2 --text "hello world"

`add_parser(subparsers)` adds the command to the main parser and `run(args)` runs it. Bad
input raises DataError or UsageError, which the main program shows as one line, status 2.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..data import DEFAULT_TEXT, DataError, read_bytes
from ..settings import UsageError
from .files import render_token, write_atomic
from .split import PATTERNS
from .tokenizer import MODEL_FILE, VOCAB_FILE, SpecialTokenError, Tokenizer, load, train

UINT16_LIMIT = 2 ** 16  # nanoGPT's train.bin holds uint16 ids
SPECIAL_CHOICES = {"refuse": {}, "allow": {"allowed_special": "all"}, "text": {"disallowed_special": ()}}
COLOURS = [f"\x1b[48;5;{c}m\x1b[38;5;16m" for c in (153, 187, 223, 217, 183, 151)]  # light backgrounds, black text
RESET = "\x1b[0m"


def add_parser(subparsers) -> None:
    """Add `tokenizer` and its four sub-commands to the main parser's sub-parsers."""
    p = subparsers.add_parser("tokenizer", help="byte-pair encoding: train a tokenizer, encode, decode, show tokens",
                              description="Byte-level BPE (minbpe's algorithm; GPT-2's tokenizer bundled as 'gpt2').")
    sub = p.add_subparsers(dest="tokenizer_command", required=True, metavar="ACTION", parser_class=type(p))
    t = sub.add_parser("train", help="learn merges from a text; write DIR/tokenizer.model and DIR/tokenizer.vocab")
    t.add_argument("--data", default=DEFAULT_TEXT, help="UTF-8 text (default: the bundled data/shakespeare.txt)")
    t.add_argument("--vocab-size", type=int, default=512, help="256 bytes + merges + special tokens (default 512)")
    t.add_argument("--out", default=os.path.join("out", "tokenizer"), help="folder to write (default out/tokenizer)")
    t.add_argument("--pattern", choices=list(PATTERNS), default="gpt2",
                   help="split pattern: GPT-2's (default), GPT-4's, or none (the basic tokenizer)")
    t.add_argument("--special", action="append", default=[], metavar="TOKEN",
                   help="a special token such as '<|endoftext|>' (repeatable), ids after the merges")
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    for name, what in (("encode", "print a text's token ids (or write them to a .bin)"),
                       ("decode", "print the text of token ids"),
                       ("show", "print a text with its token boundaries visible")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--tokenizer", required=True, metavar="DIR|gpt2|FILE",
                       help="a folder from 'tokenizer train', a .model or .tiktoken file, or gpt2")
        s.add_argument("--data", default=None, help={"decode": "ids, whitespace-separated, or a uint16 .bin file"}
                       .get(name, "UTF-8 text ('-' for standard input)"))
        if name != "decode":
            s.add_argument("--special", choices=list(SPECIAL_CHOICES), default="refuse",
                           help="a special token's text in the text: refuse it (default), allow it as its id, "
                                "or encode it as text")
    sub.choices["encode"].add_argument("--bin", default=None, metavar="FILE",
                                       help="write the ids as uint16 (nanoGPT's train.bin) instead of printing them")
    sub.choices["show"].add_argument("--text", default=None, help="the text to show (instead of --data)")
    sub.choices["show"].add_argument("--color", choices=["auto", "always", "never"], default="auto",
                                     help="colour each token (auto: on a terminal), else [brackets]")


def run(args) -> None:
    """Run the `tokenizer` action that `args` names."""
    {"train": cmd_train, "encode": cmd_encode, "decode": cmd_decode, "show": cmd_show}[args.tokenizer_command](args)


# ----------------------------------------------------------------------------- actions


def cmd_train(args) -> None:
    text = read_text(args.data)
    t0 = time.perf_counter()
    tok = train(text, args.vocab_size, pattern=args.pattern, special=args.special,
                progress=False if args.quiet else None)
    seconds = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, MODEL_FILE.removesuffix(".model")))
    if not args.quiet:
        print(f"{len(tok.merges):,} merges from {len(text):,} characters in {seconds:.2f} s; vocab_size "
              f"{tok.vocab_size:,}; wrote {os.path.join(args.out, MODEL_FILE)} and {VOCAB_FILE}", file=sys.stderr)


def cmd_encode(args) -> None:
    tok = load_tokenizer(args.tokenizer)
    raw, text = read_input(args)
    ids = encode(tok, text, args)
    if args.bin is not None:
        top = max(ids, default=0)
        if top >= UINT16_LIMIT:
            raise UsageError(f"token id {top} does not fit uint16 (below {UINT16_LIMIT:,}) for {{bin:set}}",
                             bin=("bin", args.bin))
        write_atomic(args.bin, np.asarray(ids, dtype=np.uint16).tobytes())
    else:
        sys.stdout.write(" ".join(map(str, ids)) + "\n")
    per = len(raw) / len(ids) if ids else 0.0
    print(f"{len(ids):,} tokens, {len(raw):,} bytes, {per:.2f} bytes per token", file=sys.stderr)


def cmd_decode(args) -> None:
    tok = load_tokenizer(args.tokenizer)
    path = args.data if args.data is not None else "-"
    ids = read_ids(path)
    try:
        sys.stdout.write(tok.decode(ids))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def cmd_show(args) -> None:
    tok = load_tokenizer(args.tokenizer)
    text = args.text if args.text is not None else read_input(args)[1]
    ids = encode(tok, text, args)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sys.stdout.write(show_tokens(tok, ids, colour=colour) + "\n")
    print(f"{len(ids):,} tokens", file=sys.stderr)


# ----------------------------------------------------------------------------- helpers


def show_tokens(tok: Tokenizer, ids: list[int], *, colour: bool) -> str:
    """The tokens' text one after another: on coloured backgrounds, or each in [brackets]."""
    pieces = [render_token(tok.vocab[i]) if tok.vocab[i] != b"\n" else "\\n\n" for i in ids]
    if colour:
        return "".join(f"{COLOURS[k % len(COLOURS)]}{p}{RESET}" for k, p in enumerate(pieces))
    return "".join(f"[{p}]" for p in pieces)


def encode(tok: Tokenizer, text: str, args) -> list[int]:
    try:
        return tok.encode_fast(text, **SPECIAL_CHOICES[args.special])
    except SpecialTokenError as e:
        where = "--text" if getattr(args, "text", None) is not None else f"{args.data}:{e.line}"
        raise DataError(f"{where}: the text holds the special token {e.token!r}; --special allow encodes it as its "
                        "id, --special text as ordinary text") from None


def load_tokenizer(name: str) -> Tokenizer:
    if name != "gpt2" and not os.path.exists(name):
        raise DataError(f"{name}: no such tokenizer (a folder from 'tokenizer train', a .model or .tiktoken file, "
                        "or gpt2)")
    return load(name)


def read_raw(path: str) -> bytes:
    """A file's bytes ('-': standard input)."""
    return sys.stdin.buffer.read() if path == "-" else read_bytes(path)


def read_text(path: str) -> str:
    """A UTF-8 file's text (a leading byte order mark dropped); DataError naming the line that is not UTF-8."""
    return decode_utf8(read_raw(path), path)


def decode_utf8(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 text") from None


def read_input(args) -> tuple[bytes, str]:
    if args.data is None:
        raise UsageError("give the text with {data:name}", data=("data", None))
    raw = read_raw(args.data)
    return raw, decode_utf8(raw, args.data)


def read_ids(path: str) -> list[int]:
    """Token ids from a uint16 .bin file, or from whitespace-separated integers (DataError naming a bad one's line)."""
    raw = read_raw(path)
    if path.endswith(".bin"):
        if len(raw) % 2:
            raise DataError(f"{path}: {len(raw):,} bytes, not a whole number of uint16 ids")
        return np.frombuffer(raw, dtype=np.uint16).tolist()
    text = decode_utf8(raw, path)
    ids = []
    for n, line in enumerate(text.splitlines(), start=1):
        for word in line.split():
            if not word.isdigit():
                raise DataError(f"{path}:{n}: {word[:30]!r} is not a token id")
            ids.append(int(word))
    return ids
