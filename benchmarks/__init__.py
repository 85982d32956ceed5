"""Benchmarks: speed and memory claims, each printed as a ratio measured in one run against a baseline.

Run them with ``python -m benchmarks`` (all) or ``python -m benchmarks NAME ...``. They are
not tests: timings on a shared machine vary, so nothing here asserts a threshold; each
benchmark prints its ratio, the target from the project's issue, and the raw figures.
"""
