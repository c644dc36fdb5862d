"""Calibration of the latency ESTIMATE: the fit of its factors on published Jetson measurements (``fit``,
``fit_report``; data and sources beside them: ``published.csv``, ``SOURCES.md``; ``python -m
profiles.calibration`` refits) and a user's own measurements of a device (``device``)."""
