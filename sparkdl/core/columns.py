"""Every column name sparkdl adds to a user's rows or writes to its datasets and outputs.

A user's own columns never start with ``_``; the working columns that start with one are
dropped before anything is written.
"""

#: The materialized dataset: a dense float32 array, the label, embedding indices, pixels.
FEATURES = "features"
LABEL = "label"
INDICES = "categories"
PIXELS = "_pixels"

#: Ingest: a row's raw text, its source file, why it was quarantined, a parse failure.
RAW = "_raw"
FILE = "_file"
REASON = "_reason"
CORRUPT = "_corrupt"
#: Image decoding's error for one file.
DECODE_ERROR = "_decode_error"
#: The assembled vector before it becomes the ``FEATURES`` array.
FEATURES_VECTOR = "_features_vec"

#: Scoring's outputs.
PREDICTION = "prediction"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
SCORE_ERROR = "score_error"

#: The category a missing categorical value becomes.
MISSING = "(missing)"
#: The suffix of a quarantine table or folder beside its output.
QUARANTINE_SUFFIX = "_quarantine"
