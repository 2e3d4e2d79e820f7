"""Meeting memory (docs/memory.md): search over what was said, audio retention and erasure."""
