"""Live captioning: a stream in, clip captions within seconds, a segment description as each segment window closes,
and a rolling summary (`videorecap live`, docs/live.md).

- `source.py`: what SOURCE is (a growing file, a network URL, a capture device, stdin) and its decoded frames on
  one timeline, with reconnects for network sources.
- `windows.py`: frames -> the clip windows `caption` would cut from the same recording, sampled the same way.
- `session.py`: the session: windows -> `pipeline.caption_clips` -> the hierarchy engine, events (live.jsonl,
  growing VTT files, listeners), the lag policy, the resumable store, and at the end the outputs of `caption`.
- `page.py`: the `--serve` page, fed by server-sent events through `httpserve`.
"""
