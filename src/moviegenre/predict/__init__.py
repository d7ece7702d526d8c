"""Genre probabilities for new movies from the trained artifacts, through the Branch interface."""
