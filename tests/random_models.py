"""Random-weight stand-ins for the real models, built from their published configs (no download).

They are written where the product looks for real weights (a models folder), in the real file
formats (an ultralytics checkpoint; a transformers ``save_pretrained`` folder), so the product's
own loading code reads them. Used by the tests and the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_yolo_world(folder: Path, head_bias: float = 0.0, name: str = "yolov8s-worldv2.pt", seed: int = 0) -> Path:
    """YOLO-World v2 small from ultralytics' ``yolov8s-worldv2.yaml`` with random weights, saved as
    a checkpoint ``folder/name``. ``head_bias`` sets the contrastive heads' bias (ultralytics
    initialises it to −10, which makes a random network detect nothing; 0 gives boxes scoring ≈ 0.5)."""
    import torch
    from ultralytics.nn.tasks import WorldModel

    torch.manual_seed(seed)
    model = WorldModel("yolov8s-worldv2.yaml", nc=80, verbose=False)
    for head in model.model[-1].cv4:
        head.bias.data.fill_(head_bias)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save({"model": model.half(), "train_args": {}}, path)
    return path


#: Depth Anything V2 Small as published (ViT-S/14 DINOv2 backbone, DPT head), and a tiny variant
#: of the same architecture for fast tests.
DEPTH_SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, reassemble=384,
                  neck=[48, 96, 192, 384], fusion=64, head=32),
    "tiny": dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=2, reassemble=96,
                 neck=[16, 32, 64, 96], fusion=16, head=8),
}


def make_depth_anything(folder: Path, size: str = "tiny", metric: bool = False, seed: int = 0) -> Path:
    """A Depth Anything V2 model with random weights saved with ``save_pretrained`` into ``folder``."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    p = DEPTH_SIZES[size]
    layers = p["num_hidden_layers"]
    stages = [layers // 4, layers // 2, 3 * layers // 4, layers]
    backbone = Dinov2Config(hidden_size=p["hidden_size"], num_hidden_layers=layers,
                            num_attention_heads=p["num_attention_heads"], image_size=518, patch_size=14,
                            out_features=[f"stage{i}" for i in stages], out_indices=stages,
                            reshape_hidden_states=False, apply_layernorm=True)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=p["reassemble"],
                                 neck_hidden_sizes=p["neck"], fusion_hidden_size=p["fusion"],
                                 head_hidden_size=p["head"], depth_estimation_type="metric" if metric else "relative",
                                 max_depth=20 if metric else 1)
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    return folder


def fill_text_embeddings(models: Path, labels: list[str], seed: int = 0) -> Path:
    """Cache random unit embeddings for ``labels`` in the models folder's text-embedding store."""
    from foleyspace.localize.text_embeddings import TextEmbeddings
    from foleyspace.models import TEXT_EMBEDDINGS_DIR

    store = TextEmbeddings(models / TEXT_EMBEDDINGS_DIR)
    store.put(labels, np.random.default_rng(seed).standard_normal((len(labels), 512)))
    return store.path
