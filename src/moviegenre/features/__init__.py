"""Feature sets fitted on training movies and applied to any movie: posters, plots, embeddings."""
