"""One faster-whisper transcription, timed: the peer side of
`cargo bench -p mediajobs-processor --bench media -- --only faster-whisper`.

Runs in its own process (so its peak RSS is its own), loads a CTranslate2 Whisper model
directory, transcribes a WAV `--runs` times with the model loaded, and prints one JSON line:
load seconds, the median wall time of the transcriptions, the text, and the peak RSS.
"""

import argparse
import json
import resource
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--audio", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()

    from faster_whisper import WhisperModel

    t0 = time.perf_counter()
    model = WhisperModel(
        a.model_dir, device="cpu", cpu_threads=a.threads, compute_type=a.compute_type
    )
    load = time.perf_counter() - t0
    walls, text = [], ""
    for _ in range(a.runs):
        t0 = time.perf_counter()
        segments, _info = model.transcribe(
            a.audio, language="en", beam_size=a.beam, best_of=1, vad_filter=False
        )
        text = " ".join(s.text.strip() for s in segments)  # the generator does the work
        walls.append(time.perf_counter() - t0)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "load_s": load,
                "wall_s": statistics.median(walls),
                "walls": walls,
                "text": text,
                "peak_rss_mib": rss_kib / 1024.0,
            }
        )
    )


if __name__ == "__main__":
    main()
