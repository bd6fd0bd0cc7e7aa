"""Training-side code of the binaural diffusion model (§IV, §V-D), installed as ``foleyspace.training``.

Dataset construction (``dataset_build``, ``shards``, ``trajectories``), training and evaluation.
Nothing in ``foleyspace/`` imports this package: the server and the renderer run without it.
"""
