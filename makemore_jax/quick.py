"""The quick switch: MAKEMORE_QUICK=1 shortens every training run of the notebooks.

CI executes the notebooks so (tests/test_notebooks.py); without the variable they train for
as long as the lectures do.
"""

from __future__ import annotations

import os

ENV = "MAKEMORE_QUICK"


def is_quick() -> bool:
    """Whether MAKEMORE_QUICK is set to something other than "", "0", "false" or "no"."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def quick_steps(full: int, quick: int) -> int:
    """`quick` in quick mode, else `full`: `steps = quick_steps(200_000, quick=2_000)`."""
    if not 1 <= quick <= full:
        raise ValueError(f"expected 1 <= quick <= full, got quick={quick}, full={full}")
    return quick if is_quick() else full
