"""Corpus preparers (one per layout) and the synthetic corpus generator."""
