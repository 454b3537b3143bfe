"""families/sedd."""
