"""The compression pipeline: convert, calibrate, quantize and distill models into lock-pinned artifacts.

Every output is written atomically (``edgekit.files.atomic_output``), recorded in models.lock with a
provenance table (``provenance.Provenance``), and loads in edgekit's own runtime. Passes live one per file in
``passes/``; ``recipe.py`` and ``pipeline.py`` chain them from a TOML recipe.
"""
