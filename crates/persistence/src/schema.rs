//! The diesel schema, shared by both backends (see [`crate::types`]).
#![allow(missing_docs)]

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::DbTime;

    profiles (id) {
        id -> Text,
        created_at -> DbTime,
        webhook_url -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{DbTime, DbUuid};

    files (id) {
        id -> DbUuid,
        profile_id -> Text,
        name -> Text,
        kind -> Text,
        content_type -> Nullable<Text>,
        size_bytes -> BigInt,
        sha256 -> Text,
        duration_ms -> Nullable<BigInt>,
        source_file_id -> Nullable<DbUuid>,
        origin -> Text,
        folder -> Nullable<Text>,
        storage_key -> Text,
        created_at -> DbTime,
        source_encoding -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{DbJson, DbTime, DbUuid};

    transcripts (id) {
        id -> DbUuid,
        profile_id -> Text,
        file_id -> Nullable<DbUuid>,
        job_id -> Nullable<DbUuid>,
        language -> Nullable<Text>,
        text -> Text,
        segments -> DbJson,
        created_at -> DbTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{DbJson, DbTime, DbUuid};

    jobs (id) {
        id -> DbUuid,
        #[sql_name = "type"]
        job_type -> Text,
        lane -> Text,
        status -> Text,
        profile_id -> Nullable<Text>,
        file_id -> Nullable<DbUuid>,
        parent_id -> Nullable<DbUuid>,
        claimable -> Bool,
        params -> DbJson,
        result -> Nullable<DbJson>,
        error -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_details -> Nullable<DbJson>,
        progress -> Double,
        stage -> Nullable<Text>,
        total -> Integer,
        completed -> Integer,
        attempts -> Integer,
        max_attempts -> Integer,
        priority -> SmallInt,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<DbTime>,
        cancel_requested -> Bool,
        created_at -> DbTime,
        started_at -> Nullable<DbTime>,
        finished_at -> Nullable<DbTime>,
        updated_at -> DbTime,
        run_at -> DbTime,
        last_error -> Nullable<DbJson>,
        unique_key -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        webhook -> Nullable<DbJson>,
    }
}

diesel::joinable!(files -> profiles (profile_id));
diesel::joinable!(transcripts -> profiles (profile_id));
diesel::joinable!(jobs -> files (file_id));

diesel::allow_tables_to_appear_in_same_query!(profiles, files, transcripts, jobs);
