"""Rebuild data/gpt2.tiktoken: GPT-2's byte-pair ranks in tiktoken's format.

OpenAI's openai-whisper package (MIT licence) ships GPT-2's 50,256 byte-level ranks as
whisper/assets/gpt2.tiktoken (one line per token: base64 of its bytes, a space, its rank).
Its source distribution on PyPI holds that file; this script downloads the sdist with pip,
takes out that one member, checks its sha256 and writes it next to this script atomically.

One-off build (openai-whisper is not installed, only downloaded):

    python data/make_gpt2_tiktoken.py
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "openai-whisper==20250625"
MEMBER = "whisper/assets/gpt2.tiktoken"
SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt2.tiktoken")


def download_sdist(folder: str) -> str:
    """pip download the package's sdist (no dependencies, no wheel) into `folder`; its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--dest", folder, PACKAGE], check=True)
    archives = [name for name in os.listdir(folder) if name.endswith((".tar.gz", ".tgz"))]
    if len(archives) != 1:
        sys.exit(f"error: expected one sdist in {folder}, found {archives}")
    return os.path.join(folder, archives[0])


def read_member(archive: str) -> bytes:
    """The bytes of MEMBER inside the sdist (its top folder is the package's name and version)."""
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == MEMBER:
                return tar.extractfile(info).read()
    sys.exit(f"error: {archive} has no {MEMBER}")


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", default=None, help="an already downloaded openai-whisper sdist (.tar.gz)")
    parser.add_argument("--out", default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = read_member(args.sdist or download_sdist(folder))
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"error: {MEMBER} has sha256 {digest}, expected {SHA256}")
    write_atomic(args.out, data)
    ranks = len(data.splitlines())
    print(f"wrote {args.out}: {ranks} ranks, sha256 {digest}")


if __name__ == "__main__":
    main()
