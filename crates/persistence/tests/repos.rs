//! Profiles, files and transcripts on both backends, and the file → job cascade rules.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::Arc;

use chrono::Utc;
use jobs_core::{JobStatus, JobStore, NewJob, StoreError};
use mediajobs_persistence::{
    ConnectOptions, Database, DbError, FileFilter, FileKind, FileOrigin, FileRecord, Page,
    TranscriptRecord,
};
use serde_json::json;
use uuid::Uuid;

fn file(profile: &str, name: &str) -> FileRecord {
    let id = Uuid::now_v7();
    FileRecord {
        id,
        profile_id: profile.into(),
        name: name.into(),
        kind: FileKind::Audio,
        content_type: Some("audio/wav".into()),
        size_bytes: 1234,
        sha256: "ab".repeat(32),
        duration_ms: Some(5000),
        source_file_id: None,
        origin: FileOrigin::Uploaded,
        folder: Some("inbox".into()),
        storage_key: format!("{profile}/{id}"),
        created_at: Utc::now(),
        source_encoding: None,
    }
}

async fn exercise(db: Database) {
    let store: Arc<dyn JobStore> = Arc::new(db.clone());
    // Profiles are created on first use; bad ids are refused.
    db.ensure_profile("alice").await.unwrap();
    db.ensure_profile("alice").await.unwrap();
    assert!(matches!(
        db.ensure_profile("../x").await,
        Err(DbError::Store(StoreError::Invalid(_)))
    ));
    assert_eq!(db.count_profiles().await.unwrap(), 1);

    let a = db.insert_file(&file("alice", "a.wav")).await.unwrap();
    let b = db.insert_file(&file("bob", "b.wav")).await.unwrap();
    assert_eq!(db.count_profiles().await.unwrap(), 2);
    let got = db.get_file("alice", a.id).await.unwrap().unwrap();
    assert_eq!(got.name, "a.wav");
    assert_eq!(got.kind, FileKind::Audio);
    assert_eq!(
        got.created_at.timestamp_micros(),
        a.created_at.timestamp_micros()
    );
    // Another profile's file is invisible.
    assert!(db.get_file("alice", b.id).await.unwrap().is_none());
    assert!(matches!(
        db.delete_file("alice", b.id).await,
        Err(DbError::Store(StoreError::NotFound(_)))
    ));
    let a2 = db.insert_file(&file("alice", "c.wav")).await.unwrap();
    let ids = |v: Vec<FileRecord>| v.iter().map(|f| f.id).collect::<Vec<Uuid>>();
    let all = FileFilter::default();
    let listed = ids(db.list_files("alice", &all, Page::default()).await.unwrap());
    assert_eq!(listed, vec![a2.id, a.id], "newest first");
    // Keyset pages: limit, then `before` the last id of the page.
    let one = Page {
        limit: 1,
        before: None,
    };
    assert_eq!(
        ids(db.list_files("alice", &all, one).await.unwrap()),
        vec![a2.id]
    );
    let next = Page {
        limit: 1,
        before: Some(a2.id),
    };
    assert_eq!(
        ids(db.list_files("alice", &all, next).await.unwrap()),
        vec![a.id]
    );
    let end = Page {
        limit: 1,
        before: Some(a.id),
    };
    assert!(db.list_files("alice", &all, end).await.unwrap().is_empty());
    let foreign = Page {
        limit: 1,
        before: Some(b.id),
    };
    assert!(matches!(
        db.list_files("alice", &all, foreign).await,
        Err(DbError::Store(StoreError::Invalid(_)))
    ));
    let mut sub = file("alice", "c.srt");
    sub.kind = FileKind::Subtitle;
    sub.origin = FileOrigin::Generated;
    sub.source_file_id = Some(a.id);
    sub.source_encoding = Some("windows-1252".into());
    let sub = db.insert_file(&sub).await.unwrap();
    assert_eq!(
        db.get_file("alice", sub.id)
            .await
            .unwrap()
            .unwrap()
            .source_encoding
            .as_deref(),
        Some("windows-1252")
    );
    let by_kind = FileFilter {
        kind: Some(FileKind::Subtitle),
        ..FileFilter::default()
    };
    assert_eq!(
        ids(db
            .list_files("alice", &by_kind, Page::default())
            .await
            .unwrap()),
        vec![sub.id]
    );
    let by_origin = FileFilter {
        origin: Some(FileOrigin::Uploaded),
        ..FileFilter::default()
    };
    assert_eq!(
        ids(db
            .list_files("alice", &by_origin, Page::default())
            .await
            .unwrap()),
        vec![a2.id, a.id]
    );
    let by_source = FileFilter {
        source_file_id: Some(a.id),
        ..FileFilter::default()
    };
    assert_eq!(
        ids(db
            .list_files("alice", &by_source, Page::default())
            .await
            .unwrap()),
        vec![sub.id]
    );
    db.delete_file("alice", sub.id).await.unwrap();
    let picked: Vec<Uuid> = db
        .get_files("alice", &[a2.id, b.id, a.id])
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(picked, vec![a2.id, a.id]);

    // Derived file lineage.
    let mut srt = file("alice", "a.srt");
    srt.kind = FileKind::Subtitle;
    srt.origin = FileOrigin::Generated;
    srt.source_file_id = Some(a.id);
    let srt = db.insert_file(&srt).await.unwrap();

    // Jobs reference files by a real foreign key.
    let bad = store
        .insert_job(
            NewJob::new("transcribe", json!({}))
                .profile("alice")
                .file(Uuid::now_v7()),
        )
        .await;
    assert!(bad.is_err(), "unknown file refused");
    let queued = store
        .insert_job(
            NewJob::new("transcribe", json!({}))
                .profile("alice")
                .file(a.id),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_job(queued.id).await.unwrap().unwrap().file_id,
        Some(a.id)
    );
    let running = store
        .insert_job(
            NewJob::new("transcribe", json!({}))
                .profile("alice")
                .file(a2.id),
        )
        .await
        .unwrap();
    store
        .claim_job(running.id, "n1", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let (parent, kids) = store
        .insert_batch(
            NewJob::new("batch_transcribe", json!({})).profile("alice"),
            vec![
                NewJob::new("transcribe", json!({}))
                    .profile("alice")
                    .file(a.id),
                NewJob::new("transcribe", json!({}))
                    .profile("alice")
                    .file(srt.id),
            ],
        )
        .await
        .unwrap();

    let t = db
        .insert_transcript(&TranscriptRecord {
            id: Uuid::now_v7(),
            profile_id: "alice".into(),
            file_id: Some(a.id),
            job_id: Some(queued.id),
            language: Some("en".into()),
            text: "hello world".into(),
            segments: json!([{"start": 0.0, "end": 1.0, "text": "hello world"}]),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let of_a = db
        .list_transcripts("alice", Some(a.id), Page::default())
        .await
        .unwrap();
    assert_eq!(of_a.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t.id]);

    // A running job holds its file.
    assert!(matches!(
        db.delete_file("alice", a2.id).await,
        Err(DbError::Store(StoreError::Conflict(_)))
    ));
    // Deleting a file deletes the jobs that reference it; derived files and transcripts stay.
    let del = db.delete_file("alice", a.id).await.unwrap();
    let mut want = vec![queued.id, kids[0].id];
    want.sort();
    assert_eq!(del.deleted_job_ids, want);
    assert_eq!(del.file.storage_key, a.storage_key);
    assert!(store.get_job(queued.id).await.unwrap().is_none());
    assert!(store.get_job(kids[0].id).await.unwrap().is_none());
    assert_eq!(
        store.get_job(parent.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(store.list_children(parent.id).await.unwrap().len(), 1);
    let srt_now = db.get_file("alice", srt.id).await.unwrap().unwrap();
    assert_eq!(srt_now.source_file_id, None);
    let t_now = db.get_transcript("alice", t.id).await.unwrap().unwrap();
    assert_eq!(t_now.file_id, None);
    assert_eq!(t_now.text, "hello world");

    let counts = db.job_counts().await.unwrap();
    let running: i64 = counts
        .iter()
        .filter(|c| c.status == "running")
        .map(|c| c.count)
        .sum();
    assert_eq!(running, 1);
    assert!(
        counts
            .iter()
            .any(|c| c.job_type == "batch_transcribe" && c.lane == "io" && c.count == 1)
    );

    // Transcripts are profile-scoped.
    assert!(db.get_transcript("bob", t.id).await.unwrap().is_none());
    let page = Page::default();
    assert_eq!(
        db.list_transcripts("alice", None, page)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        db.list_transcripts("alice", Some(Uuid::now_v7()), page)
            .await
            .unwrap()
            .is_empty()
    );
    let past = Page {
        limit: 10,
        before: Some(t.id),
    };
    assert!(
        db.list_transcripts("alice", None, past)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.delete_transcript("bob", t.id).await,
        Err(DbError::Store(StoreError::NotFound(_)))
    ));
    db.delete_transcript("alice", t.id).await.unwrap();
    assert!(
        db.list_transcripts("alice", None, page)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job's outputs are stored only while its fence holds: a node that lost the lease (paused
/// past it while another node took the job over) adds nothing.
async fn fenced_outputs(db: Database) {
    let store: Arc<dyn JobStore> = Arc::new(db.clone());
    let input = db.insert_file(&file("carol", "in.wav")).await.unwrap();
    let job = store
        .insert_job(NewJob::new("transcribe", json!({})).profile("carol"))
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let claimed = store
        .claim_next(&job.lane, "node-a", lease)
        .await
        .unwrap()
        .unwrap();
    let fence = claimed.fence().unwrap();
    let mut out = file("carol", "in.srt");
    out.source_file_id = Some(input.id);
    db.insert_file_fenced(&out, Some(&fence)).await.unwrap();
    let transcript = |job_id| TranscriptRecord {
        id: Uuid::now_v7(),
        profile_id: "carol".into(),
        file_id: Some(input.id),
        job_id: Some(job_id),
        language: Some("en".into()),
        text: "hello".into(),
        segments: json!([]),
        created_at: Utc::now(),
    };
    db.insert_transcript_fenced(&transcript(job.id), Some(&fence))
        .await
        .unwrap();
    // Another node's fence, an older attempt's, a fence of a job that ended: refused, and
    // nothing was written.
    let other = jobs_core::Fence {
        owner: "node-b".into(),
        ..fence.clone()
    };
    let older = jobs_core::Fence {
        attempt: fence.attempt - 1,
        ..fence.clone()
    };
    for stale in [&other, &older] {
        let late = file("carol", "late.srt");
        assert!(matches!(
            db.insert_file_fenced(&late, Some(stale)).await,
            Err(DbError::FenceLost(id)) if id == job.id
        ));
        assert!(db.get_file("carol", late.id).await.unwrap().is_none());
        let t = transcript(job.id);
        assert!(matches!(
            db.insert_transcript_fenced(&t, Some(stale)).await,
            Err(DbError::FenceLost(_))
        ));
        assert!(db.get_transcript("carol", t.id).await.unwrap().is_none());
    }
    // A cancel asked for while it runs: its output is refused too.
    store.request_cancel(job.id).await.unwrap();
    let cancelled = file("carol", "cancelled.srt");
    assert!(matches!(
        db.insert_file_fenced(&cancelled, Some(&fence)).await,
        Err(DbError::FenceLost(_))
    ));
    assert!(db.get_file("carol", cancelled.id).await.unwrap().is_none());
    store
        .complete_job(
            &fence,
            jobs_core::Outcome::Succeeded(jobs_core::JobResult::empty()),
            1,
        )
        .await
        .unwrap();
    let after = file("carol", "after.srt");
    assert!(matches!(
        db.insert_file_fenced(&after, Some(&fence)).await,
        Err(DbError::FenceLost(_))
    ));
    let mut gone = fence.clone();
    gone.job_id = Uuid::now_v7();
    assert!(matches!(
        db.insert_file_fenced(&after, Some(&gone)).await,
        Err(DbError::FenceLost(_))
    ));
    let outputs = db
        .list_transcripts("carol", Some(input.id), Page::default())
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(DbError::FenceLost(job.id).code().as_str(), "Conflict");
    assert!(!DbError::FenceLost(job.id).is_transient());
    assert!(DbError::Connection("refused".into()).is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_outputs_on_sqlite() {
    let (db, _dir) = common::sqlite_database().await;
    fenced_outputs(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_outputs_on_postgres() {
    let (db, name) = common::pg_database().await;
    fenced_outputs(db).await;
    common::drop_pg_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_on_sqlite() {
    let (db, _dir) = common::sqlite_database().await;
    exercise(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_on_postgres() {
    let (db, name) = common::pg_database().await;
    exercise(db).await;
    common::drop_pg_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_name_the_setting() {
    for url in [
        "mysql://x/y",
        "",
        "sqlite://",
        "postgres://nobody@127.0.0.1:1/db",
    ] {
        let err = Database::connect(url, ConnectOptions::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("DATABASE_URL"), "{url}: {msg}");
    }
    let err = Database::connect(
        "postgres://u:hunter2@127.0.0.1:1/db",
        ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        !err.to_string().contains("hunter2"),
        "password redacted: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/dir/jobs.db").display()
    );
    let id = {
        let db = Database::connect(&url, ConnectOptions::default())
            .await
            .unwrap();
        let j = db
            .insert_job(NewJob::new("t", json!({"k": [1, 2]})).profile("p"))
            .await
            .unwrap();
        j.id
    };
    let db = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let j = db.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.params, json!({"k": [1, 2]}));
    assert!(
        db.migrate().await.unwrap().is_empty(),
        "migrations run once"
    );
}

/// `sslmode=require` gets a verified TLS connection (the local cluster's snakeoil certificate,
/// CN=localhost, trusted through the CA-file option).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let (url, name) = common::create_pg_db().await;
    let tls_url = format!("{}?sslmode=require", url.replace("127.0.0.1", "localhost"));
    let ca = std::path::PathBuf::from(
        std::env::var("MEDIAJOBS_TEST_PG_CA")
            .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into()),
    );
    assert!(
        ca.exists(),
        "the test needs the server's certificate at {}",
        ca.display()
    );
    let opts = ConnectOptions {
        pg_ca_file: Some(ca.clone()),
        ..Default::default()
    };
    let db = Database::connect(&tls_url, opts.clone()).await.unwrap();
    let ssl = db.connection_uses_tls().await.unwrap();
    assert!(ssl, "pg_stat_ssl reports TLS");
    let j = db.insert_job(NewJob::new("t", json!({}))).await.unwrap();
    assert!(db.get_job(j.id).await.unwrap().is_some());
    // Verification is never skipped: a host name the certificate does not name (it names
    // `localhost`) is refused, trusted CA or not.
    let wrong_host = tls_url.replace("localhost", "127.0.0.1");
    let err = Database::connect(&wrong_host, opts).await.unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    // The system CA store is used as OpenSSL uses it: where the certificate is linked into
    // /etc/ssl/certs by its hash (Debian's ssl-cert does that for the snakeoil one), it is
    // trusted without the option; where it is not, it is refused without it.
    let in_system_store = std::fs::read_dir("/etc/ssl/certs")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().ends_with(".0")
                && std::fs::canonicalize(e.path()).ok() == std::fs::canonicalize(&ca).ok()
        });
    let plain = Database::connect(&tls_url, ConnectOptions::default()).await;
    assert_eq!(plain.is_ok(), in_system_store, "{:?}", plain.err());
    drop(db);
    common::drop_pg_db(&name).await;
}
