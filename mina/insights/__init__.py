"""Insights over a transcript: analytics, diarization and the offline language provider.

Pure domain code: no database, broker or HTTP. Results are the models in `schemas`.
"""
