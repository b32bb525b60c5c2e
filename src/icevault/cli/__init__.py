"""The ``icevault`` command line."""
