"""Launching Horovod ranks inside one barrier-mode Spark stage.

Driver side: :mod:`sparkdl.launch.driver`. Executor side: :mod:`sparkdl.launch.task`
(which imports nothing driver-only).
"""
from sparkdl.launch.errors import LaunchError, TrainingError, TrainingTimeoutError

__all__ = ["LaunchError", "TrainingError", "TrainingTimeoutError"]
