"""families/mdlm."""
