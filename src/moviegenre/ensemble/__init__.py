"""Combine the branches' probabilities, score the combination, draw the figures."""
