"""A user's own project beside an installed hwnas: one search space class and one config file."""
