"""The error for bad user input: its message names the problem and the fix."""


class BenchError(Exception):
    """Raised for input the user can correct; the CLI prints it without a traceback."""
