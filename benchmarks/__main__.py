"""python -m benchmarks [--quick] [--no-torch] [--out DIR] [NAME ...]: see benchmarks/suite.py."""
import sys

from benchmarks.suite import main

sys.exit(main())
