"""Dotted property paths, kept for the catalog while it moves: the names live in `armjson`."""

from .armjson import get_path, nested, set_path

__all__ = ["get_path", "nested", "set_path"]
