"""Datasets and their metadata (the synthetic world for now)."""
