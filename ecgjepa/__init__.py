"""ecgjepa: JEPA pre-training of ECG Vision Transformers (Weimann & Conrad, arXiv 2410.13867)."""

__version__ = "0.1.0"
