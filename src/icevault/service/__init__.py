"""Use cases of the Glacier API over the storage ports. Synchronous: the HTTP edge runs them
in worker threads, and tests call them directly."""
