"""Where sparkdl 0.2's MLflow models import their pyfunc class from; it lives in
:mod:`sparkdl.tracking.pyfunc` now. Kept so that models logged before the move still
load."""
import warnings

from sparkdl.tracking.pyfunc import RunPyfunc

warnings.warn("sparkdl.mlflow_model moved to sparkdl.tracking.pyfunc; this model was logged by an earlier "
              "sparkdl and still loads", DeprecationWarning, stacklevel=2)

__all__ = ["RunPyfunc"]
