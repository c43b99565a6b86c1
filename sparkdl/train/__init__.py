"""Executor-side training: the per-rank loop, its reader, checkpoints and fault injection."""
