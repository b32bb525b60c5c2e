"""Pure domain code: no I/O, no HTTP, no SQL."""
