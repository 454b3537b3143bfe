"""families/ar."""
