"""tiermover: a self-hosted task engine for data management."""

__version__ = "0.1.0"
