"""``python -m moviegenre.cli``: the same command as the ``moviegenre`` script."""

from moviegenre.cli.app import app

app()
