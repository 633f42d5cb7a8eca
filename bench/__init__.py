"""Benchmarks of the unrolled meta-gradient against an eager baseline; `python -m bench` runs them."""
