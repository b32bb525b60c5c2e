"""The HTTP edge: routing, request parsing, wire formats and error rendering."""
