"""The one error type that the CLI turns into a one-line message (no traceback)."""


class FlowshotError(Exception):
    """A problem the user can fix: bad file, bad value, missing dependency.

    The message names the file or value and says what to do, in one line.
    """
