"""Wan2.1 building blocks: diffusion transformer, causal video VAE, text and image encoders."""
