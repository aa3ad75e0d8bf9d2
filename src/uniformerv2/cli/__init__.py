"""Command-line interface: a thin skin over the Python API."""
