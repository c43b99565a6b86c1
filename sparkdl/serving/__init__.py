"""Using a committed run: executor-side prediction, the driver's score job, the run as a
Spark ML Transformer, scoring outputs, Spark-free preprocessing and held-out evaluation."""
