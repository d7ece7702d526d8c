"""From data/raw to the prepared table: validate posters, pick genres, split, label."""
