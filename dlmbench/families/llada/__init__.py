"""families/llada."""
