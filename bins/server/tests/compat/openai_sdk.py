"""The official OpenAI Python SDK against a running mediajobs: every response_format,
translations, timestamp_granularities, streaming, models, and SDK exceptions for bad requests.

Usage: openai_sdk.py BASE_URL SPEECH_WAV GERMAN_WAV NOT_MEDIA_FILE
Prints one JSON line per check (the Rust test reads them) and exits non-zero on a failure.
"""
import json
import sys

import openai

base, speech, german, junk = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=sys.argv[5] if len(sys.argv) > 5 else "none")


def report(name, **kw):
    print(json.dumps({"check": name, **kw}), flush=True)


def words(s):
    return [w.strip(".,!?").lower() for w in s.split()]


# json (default)
with open(speech, "rb") as f:
    r = client.audio.transcriptions.create(model="whisper-1", file=f)
assert "fox" in words(r.text), r.text
report("json", text=r.text)

# text
with open(speech, "rb") as f:
    t = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
assert isinstance(t, str) and "fox" in words(t), t
report("text", text=t)

# srt, with the installed model's own name
with open(speech, "rb") as f:
    srt = client.audio.transcriptions.create(model="base", file=f, response_format="srt", language="en")
assert srt.startswith("1\n00:00:00,"), srt
assert " --> " in srt
report("srt", srt=srt)

# vtt
with open(speech, "rb") as f:
    vtt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="vtt")
assert vtt.startswith("WEBVTT"), vtt
report("vtt", vtt=vtt)

# verbose_json with word and segment timestamps
with open(speech, "rb") as f:
    v = client.audio.transcriptions.create(
        model="whisper-1",
        file=f,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
assert v.language == "english", v.language
assert v.duration > 1.0
assert v.segments and v.words, v
seg = v.segments[0]
for key in ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
            "compression_ratio", "no_speech_prob"):
    assert getattr(seg, key) is not None, key
assert seg.tokens and seg.avg_logprob < 0 and 0 <= seg.no_speech_prob <= 1
assert all(w.end >= w.start for w in v.words)
report("verbose_json", language=v.language, duration=v.duration,
       segments=len(v.segments), words=len(v.words))

# verbose_json with words only: no segments
with open(speech, "rb") as f:
    v = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json",
        timestamp_granularities=["word"],
    )
assert v.words and not getattr(v, "segments", None)
report("words_only", words=len(v.words))

# translation (German speech to English)
with open(german, "rb") as f:
    tr = client.audio.translations.create(model="whisper-1", file=f)
assert tr.text and tr.text.isascii(), tr.text
report("translation", text=tr.text)

# streaming
with open(speech, "rb") as f:
    stream = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
    deltas, done = [], None
    for ev in stream:
        if ev.type == "transcript.text.delta":
            deltas.append(ev.delta)
        elif ev.type == "transcript.text.done":
            done = ev.text
assert deltas and done and "".join(deltas).strip() == done.strip(), (deltas, done)
report("stream", deltas=len(deltas), text=done)

# models
ids = [m.id for m in client.models.list()]
assert "whisper-1" in ids and "base" in ids, ids
assert client.models.retrieve("whisper-1").id == "whisper-1"
try:
    client.models.retrieve("gpt-9")
    raise AssertionError("no error for an unknown model")
except openai.NotFoundError as e:
    assert e.status_code == 404
report("models", ids=ids)

# SDK exceptions: unknown model, not media, bad response_format
for name, kw in [
    ("unknown_model", dict(model="large-v9")),
    ("not_media", dict(model="whisper-1", path=junk)),
    ("bad_format", dict(model="whisper-1", response_format="docx")),
]:
    path = kw.pop("path", speech)
    try:
        with open(path, "rb") as f:
            client.audio.transcriptions.create(file=f, **kw)
        raise AssertionError(f"{name}: no exception")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e.status_code
        body = e.body if isinstance(e.body, dict) else {}
        assert body.get("message") and body.get("type") == "invalid_request_error", e.body
        report(name, status=e.status_code, code=body.get("code"), message=body.get("message"))
report("all_passed")
