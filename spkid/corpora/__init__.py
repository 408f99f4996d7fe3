"""Corpus preparers (one per layout), Kaldi data directories (``kaldi``), the synthetic corpus generator."""
