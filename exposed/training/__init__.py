"""Training: synthetic raw data, night scenes, the training loop, evaluation, calibration and packs."""
