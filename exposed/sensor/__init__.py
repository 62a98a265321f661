"""Sensor noise: the P+G and ELD models, calibrated cameras, and estimating a file's noise."""
