"""moviegenre: predict a movie's genres from its poster and its plot."""

from moviegenre.core import quiet_tensorflow

__version__ = "0.1.0"

quiet_tensorflow.install()  # before any TensorFlow import: its start-up chatter stays off stderr
