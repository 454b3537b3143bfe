"""Dream (Ye et al. 2025, HKUNLP): a bidirectional Qwen2-style masked diffusion LM with shifted logits."""
