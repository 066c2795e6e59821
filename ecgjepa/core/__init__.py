"""The low layer that data preparation and the rest of ecgjepa share: lead names, signal functions, the raw-record
reader, the dump format with its reader and writer, the atomic writer and the user-error type.

It imports nothing from ``data_prep`` or from the other sub-packages of ``ecgjepa``.
"""
