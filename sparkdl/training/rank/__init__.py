"""What runs on each rank, inside a barrier task: the training loop and its callbacks, the
shard reader, checkpoints, and test fault injection. Imports nothing driver-only."""
