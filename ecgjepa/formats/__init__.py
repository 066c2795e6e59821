"""One home for file formats: checkpoint layouts (:mod:`.layouts`), the encoder export (:mod:`.export`),
conversion to and from the original ECG-JEPA (:mod:`.original`), atomic writes and safe loading
(:mod:`.files`, :mod:`.checkpoint_io`), and :func:`.resolve.resolve_encoder`."""
