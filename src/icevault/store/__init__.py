"""Storage ports (metadata, blobs) and their adapters."""
