"""The compression pipeline: convert, calibrate, quantize and distill models into lock-pinned artifacts.

Every output is written atomically (``edgekit.files.atomic_output``), recorded in models.lock with a
provenance table (``provenance.Provenance``), and loads in edgekit's own runtime. Passes live one per file in
``passes/``, each pipeline step class (``step.Pass``) beside the function that does its work (the
dequantize and distill steps beside theirs, in ``hf.py`` and ``distill/``); ``recipe.py`` and
``pipeline/`` (plan, cache, run) chain them from a TOML recipe.
"""
