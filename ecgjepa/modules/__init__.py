"""LightningModules: JEPA pre-training and PTB-XL evaluation."""
