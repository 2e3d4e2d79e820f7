"""Providers behind small interfaces, chosen by settings (DESIGN §5)."""
