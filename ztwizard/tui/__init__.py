"""The interactive wizard (Textual). Nothing outside this package imports Textual."""
