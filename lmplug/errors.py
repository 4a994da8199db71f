"""The one exception type a CLI user sees as a one-line message (exit 2), and the checks that raise it."""

import math
from collections import Counter
from collections.abc import Sequence


class LmplugError(ValueError):
    """A user error: bad input, missing file, mismatched model. The message says expected vs found."""


class EmissionsError(LmplugError):
    """Bad emissions in one utterance of a decoded batch; ``utterance`` is its index in the batch
    (a caller that knows the utterances' ids names it)."""

    def __init__(self, message: str, utterance: int) -> None:
        super().__init__(message)
        self.utterance = utterance


def expect_number(owner: str, name: str, value, *, integer: bool = False, at_least: float | None = None,
                  above: float | None = None, below: float | None = None) -> None:
    """``owner.name`` (``name`` alone with owner "": a CLI flag) must be a finite number (an int with
    ``integer``) within the bounds given."""
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
        raise LmplugError(f"{f'{owner}.' if owner else ''}{name}: expected {want}, found {value!r}")


def config_from_dict(cls, d):
    """``cls(**d)`` for ``d`` a JSON object of fields of the dataclass ``cls`` (a model config read
    from a checkpoint); anything else is an ``LmplugError`` saying what was expected."""
    if not isinstance(d, dict):
        raise LmplugError(f"expected the model config as a JSON object, found {type(d).__name__}")
    known = set(cls.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise LmplugError(f"unknown {cls.__name__} fields {sorted(unknown)}; expected a subset of {sorted(known)}")
    return cls(**d)


def expect_each_once(names: Sequence[str], what: str = "feature") -> None:
    """Each name once (features to tune or compute: a repeated one would be a second column of the
    same values, tuned apart and then folded into one weight that no search ever chose)."""
    for name, count in Counter(names).items():
        if count > 1:
            raise LmplugError(f"expected each {what} once, found {name!r} {'twice' if count == 2 else f'{count} times'}")


def expect_unique_ids(path, ids: Sequence[str], positions: Sequence[int] | None = None, unit: str = "lines") -> None:
    """Each utterance id of ``path`` once; ``positions`` say where each id is (default: lines 1, 2, ...)."""
    seen: set[str] = set()
    for uid in ids:
        if uid in seen:
            at = [str(n) for n, u in zip(positions or range(1, len(ids) + 1), ids) if u == uid]
            raise LmplugError(f"{path}: expected each utterance id once, found {uid!r} at {unit} "
                              f"{', '.join(at[:-1])} and {at[-1]}")
        seen.add(uid)
