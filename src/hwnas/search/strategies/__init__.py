"""Strategies: what proposes architectures to the study (``conf/search/*.yaml``'s ``strategy:`` node).
``base.py`` holds the contract; one strategy per module."""
