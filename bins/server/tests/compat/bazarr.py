"""The requests Bazarr's "Whisper" provider (subliminal_patch whisperai) and Subgen send to a
whisper-asr-webservice, made the same way with `requests`: raw PCM decoded by ffmpeg, sent as
files={'audio_file': bytes} (part filename `audio_file`, no part Content-Type), options in the
query.

Usage: bazarr.py BASE_URL SPEECH_MEDIA
Prints one JSON line per check and exits non-zero on a failure.
"""
import json
import subprocess
import sys

import requests

base, media = sys.argv[1:3]
session = requests.Session()


def report(name, **kw):
    print(json.dumps({"check": name, **kw}), flush=True)


# Bazarr's encode_audio_stream: ffmpeg to s16le, mono, 16 kHz, on stdout.
pcm = subprocess.run(
    ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", media, "-f", "s16le",
     "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", "-af", "aresample=async=1", "-"],
    check=True, capture_output=True,
).stdout

# detect_language
r = session.post(f"{base}/detect-language",
                 params={"encode": "false", "video_file": "/tv/Show/S01E01.mkv"},
                 files={"audio_file": pcm}, timeout=(5, 600))
assert r.status_code == 200, (r.status_code, r.content)
results = r.json()
assert results["language_code"] == "en" and results["detected_language"] == "english", results
assert 0.5 < results["confidence"] <= 1.0, results
report("detect_language", status=r.status_code, body=results, job=r.headers.get("x-job-id"))

# query (the subtitle itself)
r = session.post(f"{base}/asr",
                 params={"task": "transcribe", "language": "en", "output": "srt",
                         "encode": "false", "video_file": "/tv/Show/S01E01.mkv"},
                 files={"audio_file": pcm}, timeout=(5, 600))
srt = r.content.decode("utf-8")
assert r.status_code == 200 and srt.startswith("1\n00:00:"), (r.status_code, srt)
assert "fox" in srt.lower(), srt
report("asr_srt", status=r.status_code, content_type=r.headers["content-type"], srt=srt,
       job=r.headers.get("x-job-id"))

# Subgen: the media file itself (encode=true), words in json
with open(media, "rb") as f:
    r = session.post(f"{base}/asr",
                     params={"task": "transcribe", "language": "en", "output": "json",
                             "encode": "true", "word_timestamps": "true", "vad_filter": "false"},
                     files={"audio_file": f}, timeout=(5, 600))
assert r.status_code == 200, (r.status_code, r.content)
doc = r.json()
assert doc["language"] == "en" and doc["segments"] and "words" in doc["segments"][0], doc
report("subgen_json", segments=len(doc["segments"]), text=doc["text"])

for output, check in [("txt", lambda b: "fox" in b.lower()),
                      ("vtt", lambda b: b.startswith("WEBVTT")),
                      ("tsv", lambda b: b.startswith("start\tend\ttext\n"))]:
    r = session.post(f"{base}/asr", params={"output": output, "encode": "false"},
                     files={"audio_file": pcm}, timeout=(5, 600))
    body = r.content.decode("utf-8")
    assert r.status_code == 200 and check(body), (output, r.status_code, body)
    report("asr_" + output, content_type=r.headers["content-type"])

# Errors are never a 200 (Bazarr reads r.content without looking at the status).
for name, params, files in [
    ("empty_pcm", {"encode": "false"}, {"audio_file": b""}),
    ("no_audio_file", {"encode": "false"}, {"other": b"x"}),
    ("not_media", {"encode": "true"}, {"audio_file": b"this is not audio at all" * 100}),
    ("bad_output", {"output": "docx"}, {"audio_file": pcm}),
]:
    for route in ("/asr", "/detect-language"):
        if name == "bad_output" and route == "/detect-language":
            continue
        r = session.post(f"{base}{route}", params=params, files=files, timeout=(5, 600))
        assert r.status_code >= 400, (name, route, r.status_code, r.content)
        assert "detail" in r.json(), r.content
        report("error_" + name, route=route, status=r.status_code, detail=r.json()["detail"])
report("all_passed")
