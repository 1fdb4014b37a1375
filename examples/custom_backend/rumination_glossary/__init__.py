"""An example rumination search backend: a glossary of heat pump terms (see README.md)."""

from .backend import GlossaryBackend, GlossaryEntry, GlossaryOptions

__all__ = ["GlossaryBackend", "GlossaryEntry", "GlossaryOptions"]
