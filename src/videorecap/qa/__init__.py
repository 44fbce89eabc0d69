"""Questions over the hierarchy: answering multiple-choice (EgoSchema-style) and open questions about a video from
its captions, with an LLM (`videorecap.llm`) or a retrieval baseline that needs none.

- `parse`: lenient reading of an LLM's answer ("C", "Option 3", "answer: (C)", JSON, the choice text itself);
- `context`: the caption text an answerer sees (clip captions only / the hierarchy / the summary only), fitted to a
  character budget, and the moments it cites as evidence;
- `answer`: the answerers (retrieval baseline, LLM) and one question's answer with its evidence;
- `egoschema`: EgoSchema's questions/answers files, and the resumable runner over many questions.
"""
