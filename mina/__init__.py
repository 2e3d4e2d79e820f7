"""Mina: meeting audio in ~30 s chunks in, transcript, analytics, action items and summary out."""

__version__ = "0.1.0"
