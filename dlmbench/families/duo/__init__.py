"""DUO (Sahoo et al., ICML 2025; s-sahoo/duo): uniform-state discrete diffusion."""
