"""Datasets, data modules, masks and transforms."""
