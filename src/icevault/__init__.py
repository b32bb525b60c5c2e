"""icevault: a self-hosted archive store that speaks the Amazon S3 Glacier API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
