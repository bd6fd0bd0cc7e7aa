"""The diffusion renderer (paper §III-D): a binaural DiffWave conditioned on the mono signal and
the 3-D trajectory. Importable without ``training/`` (the server loads checkpoints with it)."""
