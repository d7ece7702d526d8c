"""Getting a dataset into data/raw: sources (paths, URLs, fsspec), HTTP with retries, archives, layouts.

Kept apart from ``moviegenre.data`` (the prepared table, splits, genres) so that the stages
after the download, which depend on ``data/``, do not rerun when the fetching code changes.
"""
