"""moviegenre: predict a movie's genres from its poster and its plot."""

__version__ = "0.1.0"
