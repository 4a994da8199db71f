"""The one exception type a CLI user sees as a one-line message (exit 2)."""


class LmplugError(ValueError):
    """A user error: bad input, missing file, mismatched model. The message says expected vs found."""
