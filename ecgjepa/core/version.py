"""The package version (recorded in dumps, metrics and model cards)."""

VERSION = "0.1.0"
