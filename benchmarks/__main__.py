"""python -m benchmarks [--quick] [--no-torch] [--out DIR] [NAME ...]: see benchmarks/suite.py."""

import sys

from benchmarks.suite import main

if __name__ == "__main__":
    sys.exit(main())
