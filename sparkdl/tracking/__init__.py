"""What a person sees of a run: live progress, the report and its plots, and MLflow
tracking with the run's pyfunc model."""
