//! `SqliteOptions::quick_check`: a damaged file is refused when it is opened, with what SQLite
//! found, and left as it was; a sound one opens.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::Path;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Engine, StepError, StoreError};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SqliteOptions, SqliteStore};

/// A database with one finished run of 20 steps, each with a sizable output, closed (its WAL
/// checkpointed into the file).
fn database(path: &Path) {
    let mut b = Builder::<u32>::new("Pages");
    let input = b.input();
    for i in 0..20 {
        b.step(format!("s{i}"), StepOptions::new(), (input,), |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(format!("{x:0>400}")) }
        });
    }
    let def = b.build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::open(path).unwrap();
        engine
            .start(&def, "r", 7)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    });
}

/// Overwrites the header of page 2 (the root of the first table) with garbage.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    assert!(bytes.len() >= 3 * page_size, "the file has several pages");
    bytes[page_size..page_size + 12].fill(0xA5);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_file_is_refused_at_open_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    database(&path);
    damage(&path);
    let before = std::fs::read(&path).unwrap();
    let error = SqliteStore::open(&path, SqliteOptions::default().quick_check(true)).unwrap_err();
    match &error {
        StoreError::Corrupt {
            path: named,
            problems,
        } => {
            assert!(named.ends_with("damaged.db"), "{named}");
            assert!(!problems.is_empty() && problems != "ok", "{problems}");
        }
        other => panic!("not refused as damaged: {other:?}"),
    }
    assert!(error.to_string().contains("is damaged"), "{error}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was written to"
    );
}

#[test]
fn a_sound_file_opens_with_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sound.db");
    database(&path);
    let store = SqliteStore::open(&path, SqliteOptions::default().quick_check(true)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = runtime
        .block_on(sagaflow_core::runtime::RunStore::load_run(
            &store,
            &"r".into(),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(run.steps.len(), 20);
}
