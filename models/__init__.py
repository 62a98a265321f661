"""Shipped checkpoints and their model cards (installed as exposed.models)."""
