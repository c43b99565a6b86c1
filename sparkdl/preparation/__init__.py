"""Data preparation on Spark: ingest with quarantine, image decoding, the fitted feature
pipeline, embedding indices, and the materialized Parquet dataset with its manifest."""
