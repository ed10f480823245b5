"""Helpers for the weitiao.io tests: checkpoint files built by code, never committed blobs."""
