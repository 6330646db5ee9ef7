"""python -m makemore_jax: the same as the makemore-jax command."""

import sys

from .cli import command_line

sys.exit(command_line())
