"""sparkdl benchmarks: every stage as a ratio against a baseline measured in the same run.

Run ``python -m benchmarks [--quick]`` (or ``make bench``); see ``benchmarks/__main__.py``.
"""
