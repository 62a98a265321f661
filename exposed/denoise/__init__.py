"""The exposure model: its network, the exposure process that drives it, inference and model files."""
