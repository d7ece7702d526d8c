"""The ``moviegenre`` command line: predict, report, check-params."""
