"""The configs, importable as ``hwnas.conf`` so Hydra finds them as ``pkg://hwnas.conf`` from any directory."""
