//! Voice activity detection end to end: the real binary with the Silero VAD model (converted
//! from the real `silero-vad` package), speech with a long pause: `generate_srt` uses VAD by
//! default and says so, `transcribe` does not unless asked, `/asr` takes `vad_filter`, and a
//! server without a VAD model refuses `vad: true`.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, assert_error};
use mediajobs_processor::media::{AudioDecoder, Gst, GstConfig};
use mediajobs_processor::{CancellationToken, no_progress};
use serde_json::{Value, json};

const P: &str = "vad";
const MIN: Duration = Duration::from_secs(90);
const RATE: usize = 16_000;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Speech, 30 s of silence, speech again, as a 16 kHz WAV; the second sentence's start, ms.
async fn speech_with_a_pause(dir: &Path) -> (PathBuf, i64) {
    let wav = common::speech(dir, "speech", common::SPEECH);
    let gst = Gst::new(GstConfig::default()).unwrap();
    let s = gst
        .decode(&wav, no_progress(), &CancellationToken::new())
        .await
        .unwrap()
        .samples;
    let mut out = s.clone();
    out.extend(std::iter::repeat_n(0.0f32, 30 * RATE));
    let second = (out.len() * 1000 / RATE) as i64;
    out.extend(&s);
    out.extend(std::iter::repeat_n(0.0f32, 2 * RATE));
    let path = dir.join("pause.wav");
    std::fs::write(&path, mediajobs_processor::wav::encode(&out)).unwrap();
    (path, second)
}

fn parse_ms(t: &str) -> i64 {
    // HH:MM:SS,mmm
    let (hms, ms) = t.trim().split_once(',').unwrap();
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000 + ms.parse::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtitles_skip_the_silence_by_default() {
    let vad = mediajobs_processor::model::silero::ensure_vad_model(&common::models_dir())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(
        data.path(),
        &[("MEDIAJOBS_VAD_MODEL", vad.to_str().unwrap())],
    )
    .await;
    let (_, list) = s.get("/models", P).await;
    assert_eq!(list["vad"], true, "{list}");

    let (wav, second) = speech_with_a_pause(media.path()).await;
    let f = s.upload(P, "pause.wav", std::fs::read(&wav).unwrap()).await;

    // generate_srt: VAD by default, recorded in the job; the cues keep the original times.
    let j = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    assert_eq!(j["params"]["opts"]["vad"], true, "{j}");
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let r = &done["result"];
    let total = f["duration_ms"].as_i64().unwrap();
    let heard = r["speech_ms"].as_i64().unwrap();
    assert!(heard < total / 2, "whisper heard {heard} of {total} ms");
    let srt = r["srt_content"].as_str().unwrap();
    assert!(srt.to_lowercase().contains("committee"), "{srt}");
    let starts: Vec<i64> = srt
        .lines()
        .filter_map(|l| l.split_once(" --> "))
        .map(|(a, _)| parse_ms(a))
        .collect();
    assert!(
        starts
            .iter()
            .any(|&t| (second - 1000..second + 3000).contains(&t)),
        "a cue starts where the second sentence does ({second} ms): {starts:?}\n{srt}"
    );
    assert!(
        starts
            .iter()
            .all(|&t| !(second - 25_000..second - 3000).contains(&t)),
        "no cue in the pause: {starts:?}"
    );

    // transcribe: no VAD unless asked.
    let j = s
        .submit(P, json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    assert_eq!(j["params"]["opts"]["vad"], false, "{j}");
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["result"].get("speech_ms").is_none(), "{done}");
    let j = s
        .submit(
            P,
            json!({"type": "transcribe", "file_id": id(&f), "opts": {"vad": true}}),
        )
        .await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["result"]["speech_ms"].as_i64().unwrap() < total / 2);
    assert!(
        done["result"]["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("windows")
    );

    // /asr (whisper-asr-webservice's API, Bazarr's): vad_filter=true.
    let audio = std::fs::read(&wav).unwrap();
    let r = s
        .post_form(
            "/asr?output=srt&vad_filter=true&language=en",
            P,
            &[("audio_file", Some("pause.wav"), &audio)],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let job_id = r.headers()["x-job-id"].to_str().unwrap().to_owned();
    let srt = r.text().await.unwrap();
    assert!(srt.to_lowercase().contains("committee"), "{srt}");
    let (_, job) = s.get(&format!("/jobs/{job_id}"), P).await;
    assert_eq!(job["params"]["opts"]["vad"], true, "{job}");
    assert!(job["result"]["speech_ms"].as_i64().is_some(), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_vad_model_vad_is_refused_and_off_by_default() {
    let data = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(data.path(), &[]).await;
    let (_, list) = s.get("/models", P).await;
    assert_eq!(list["vad"], false, "{list}");
    let wav = common::speech(media.path(), "speech", common::SPEECH);
    let f = s
        .upload(P, "speech.wav", std::fs::read(&wav).unwrap())
        .await;

    let res = s
        .post(
            "/jobs",
            P,
            json!({"type": "generate_srt", "file_id": id(&f), "opts": {"vad": true}}),
        )
        .await;
    assert_error(&res, 422, "WhisperUnavailable");
    let msg = res.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("model fetch silero-vad"), "{msg}");

    // The default is off here, and the job says so.
    let j = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    assert_eq!(j["params"]["opts"]["vad"], false, "{j}");
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["result"].get("speech_ms").is_none(), "{done}");

    let res = s
        .post(
            "/jobs",
            P,
            json!({"type": "transcribe", "file_id": id(&f), "opts": {"vad": "yes"}}),
        )
        .await;
    assert_error(&res, 422, "ValidationError");

    let audio = std::fs::read(&wav).unwrap();
    let res = common::send(s.post_form(
        "/asr?vad_filter=true",
        P,
        &[("audio_file", Some("speech.wav"), &audio)],
    ))
    .await;
    // whisper-asr-webservice's error form: `{"code", "detail"}`.
    assert_eq!(res.0, 422, "{}", res.1);
    assert_eq!(res.1["code"], "WhisperUnavailable", "{}", res.1);
    assert!(
        res.1["detail"]
            .as_str()
            .unwrap()
            .contains("model fetch silero-vad")
    );
}
