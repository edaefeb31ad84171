"""LLM backends: a small protocol, built-ins, and an entry-point group for plug-ins."""
