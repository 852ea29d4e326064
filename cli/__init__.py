"""The command line: a thin click shell over the core."""
