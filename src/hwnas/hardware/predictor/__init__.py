"""``hardware=predictor``: latency learned from a few measurements on the real target (see ``profiler``)."""
