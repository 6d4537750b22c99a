"""Held-out evaluation of trained models: dataset-level segmentation metrics and the runners that feed them."""
