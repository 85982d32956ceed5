"""difficulty-bench: a benchmark harness for example-difficulty and out-of-distribution scores.

A scorer plugin imports its contract from ``bench.api``. This package itself imports
nothing, so that reading a leaderboard (``bench show``, ``compare``, ``merge``) needs no torch.
"""

__version__ = "0.8.0"
