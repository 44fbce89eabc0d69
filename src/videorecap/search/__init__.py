"""Moment search over captioned videos: `videorecap search OUT/ "query"` and the folder web app.

- `bm25.py`: the lexical ranking (Okapi BM25) and the one tokenizer, which the page's search box repeats in
  JavaScript (export.py);
- `index.py`: the searchable texts of every captions.json below a folder, and their sentence embeddings, stored
  beside the outputs in `OUT/.videorecap-search/` (incremental, keyed by each file's content hash);
- `moments.py`: lexical, semantic and hybrid ranking, fused by a normalised score sum, then adjacent hits of a video
  merged into moments;
- `webapp.py`: the routes of a local web app over the folder (browse, search, ask), mounted on an httpserve.App.
"""
