"""Placeholder until this part of the lists app lands."""

JOBS: list = []
