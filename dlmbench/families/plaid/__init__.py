"""families/plaid."""
