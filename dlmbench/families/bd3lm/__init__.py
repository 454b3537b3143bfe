"""families/bd3lm: block diffusion (Arriola et al. 2025)."""
