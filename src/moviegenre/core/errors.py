"""The one exception type the pipeline raises for problems a user can fix.

Stage scripts and the command line turn it into a single ``error: ...`` line and a
non-zero exit, so its message must name the file or setting and the problem.
"""


class MovieGenreError(Exception):
    """A problem with input data, configuration or artifacts, explained in one line."""
