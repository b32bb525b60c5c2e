"""The web console at /console."""
