"""Parsl's ``parsl.jobs`` package path: the states a block (batch job) can be in."""
