"""The one exception type a CLI user sees as a one-line message (exit 2), and the checks that raise it."""

import math


class LmplugError(ValueError):
    """A user error: bad input, missing file, mismatched model. The message says expected vs found."""


def expect_number(owner: str, name: str, value, *, integer: bool = False, at_least: float | None = None,
                  above: float | None = None, below: float | None = None) -> None:
    """``owner.name`` must be a finite number (an int with ``integer``) within the bounds given."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or isinstance(value, int))
    ok = ok and (at_least is None or value >= at_least) and (above is None or value > above)
    ok = ok and (below is None or value < below)
    if not ok:
        low = f">= {at_least:g}" if at_least is not None else f"> {above:g}" if above is not None else ""
        kind = "an integer" if integer else "a number"
        if low and below is not None:  # "0 <= dropout < 1"
            want = f"{kind} with {low.split()[1]} {'<=' if at_least is not None else '<'} {name} < {below:g}"
        else:
            want = f"{kind} {low or (f'< {below:g}' if below is not None else '')}".strip()
        raise LmplugError(f"{owner}.{name}: expected {want}, found {value!r}")
