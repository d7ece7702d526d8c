"""Scores and probability files: what a branch and the ensemble write, in one form."""
