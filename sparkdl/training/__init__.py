"""Training: the driver's supervisor and resume logic, the barrier-stage launch
(``launch``), the loop each rank runs (``rank``), and the collective backends
(``backends``)."""
