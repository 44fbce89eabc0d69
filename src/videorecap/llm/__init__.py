"""Language models over the hierarchy's text: one text-model layer with two kinds of backend (`backend.py`), the
project's own text-only model (`textmodel.py`) and its OpenAI-compatible endpoint (`serve.py`), and prompts that
are files users can edit (`prompts.py`, `prompts/*.txt`). See docs/llm.md."""
