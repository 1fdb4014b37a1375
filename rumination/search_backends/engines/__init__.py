"""Engines of the local corpus: the protocol they share, and the Tantivy engine."""
