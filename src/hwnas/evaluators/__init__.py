"""Evaluators: what a candidate's metrics cost (training, a shared supernet, a measured table), one per module
beside ``conf/evaluator/``; ``base.py`` holds the contract the search loop calls."""
