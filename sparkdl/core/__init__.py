"""The base every stage stands on: configuration, the Spark session, the lake and the run
directory, column names and declared types, metric definitions and records, errors.

Nothing here imports from ``prep``, ``train``, ``serve`` or ``track``."""
