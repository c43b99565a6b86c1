"""Launching the ranks inside one barrier-mode Spark stage.

Driver side: :mod:`sparkdl.training.launch.driver`. Executor side:
:mod:`sparkdl.training.launch.task` (which imports nothing driver-only).
"""
