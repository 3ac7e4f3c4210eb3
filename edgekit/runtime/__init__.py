"""Local and remote inference behind one ``Backend`` seam (``base.py``): llama.cpp for GGUF
(``llamacpp.py``), onnxruntime for ONNX causal LMs (``onnx.py``) and sentence encoders (``encoder.py``),
an OpenAI-compatible endpoint (``remote.py``); chat messages, parameters and results (``types.py``),
GGUF header checks before llama.cpp reads a file (``gguf.py``, ``llamacpp_fields.py``, ``probe.py``), and
the thread policy (``threads.py``). Nothing here knows of schema, safety or routing: a grammar arrives as a
``types.TokenConstraint``."""
