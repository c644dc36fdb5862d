"""``python -m profiles.calibration``: refit the estimator's factors on the published measurements."""
from profiles.calibration.fit import main

main()
