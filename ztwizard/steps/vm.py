"""Placeholder until the article is written."""

from ._base import Step

STEPS: list[Step] = []
