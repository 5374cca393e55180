"""Pilot, unit and snapshot tests of the wizard (Textual)."""
