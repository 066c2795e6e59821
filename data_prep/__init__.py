"""Raw ECG corpora -> memory-mappable 500 Hz float16 dumps (`python -m data_prep --help`).

A repository tool, not part of the `ecgjepa` wheel; see `data_prep/common.py` for the dump format.
"""
