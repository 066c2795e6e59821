"""ECG ViT encoder, JEPA predictor and evaluation heads."""

from ecgjepa.models.config import CANONICAL_LEADS, ModelConfig
from ecgjepa.models.predictor import Predictor
from ecgjepa.models.vit import VisionTransformer

__all__ = ["CANONICAL_LEADS", "ModelConfig", "Predictor", "VisionTransformer"]
