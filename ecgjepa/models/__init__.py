"""ECG ViT encoder, JEPA predictor and evaluation heads."""

from ecgjepa.models.config import ModelConfig
from ecgjepa.models.predictor import Predictor
from ecgjepa.models.vit import VisionTransformer

__all__ = ["ModelConfig", "Predictor", "VisionTransformer"]
