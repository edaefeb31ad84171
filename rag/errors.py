"""The exceptions of rag. Every message says what to do next.

    RagError
     ├── IngestError      a file could not be read or parsed as a trial record
     └── StoreError       the index is missing, locked, incompatible or could not be built

The library raises; only rag/cli.py turns a RagError into one stderr line and exit code 1.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class of every error rag raises on purpose."""


class IngestError(RagError):
    """A file could not be read or parsed; the message names the file and the fix."""


class StoreError(RagError):
    """The index is missing, locked, incompatible or could not be built."""
