//! The commit protocol on local disk and in memory. The same protocol against a real S3 server,
//! with crashes and an unreachable server, is tested in `tests/tests/checkpoints.rs`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;

use super::*;

fn manifest(step: u64) -> Manifest {
    Manifest {
        format: 0,
        step,
        epoch: step / 10,
        created_unix_ms: 0,
        writer: "test".into(),
        world_size: 1,
        data_positions: Vec::new(),
        rng: RngState {
            scheme: "test".into(),
            seed: 7,
            next_step: step,
        },
        job: serde_json::json!({"job_id": "t"}),
        trainer: serde_json::Value::Null,
        parameters_sha256: String::new(),
        objects: Vec::new(),
    }
}

fn objects(step: u64) -> Vec<(String, Bytes)> {
    vec![
        ("a.bin".into(), Bytes::from(vec![step as u8; 1000])),
        ("b.bin".into(), Bytes::from(format!("state at {step}"))),
    ]
}

fn options(keep: usize) -> CheckpointOptions {
    CheckpointOptions {
        keep,
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        retry: RetryPolicy {
            attempts: 2,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        },
        ..CheckpointOptions::default()
    }
}

fn local(dir: &tempfile::TempDir, keep: usize) -> CheckpointStore {
    let root = StoreLocation::local(&dir.path().join("checkpoints"), true).unwrap();
    CheckpointStore::new(root, options(keep)).unwrap()
}

#[tokio::test]
async fn commit_writes_objects_then_manifest_then_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 3);
    assert!(store.latest().await.unwrap().is_none());
    let committed = store.commit(manifest(10), objects(10)).await.unwrap();
    assert!(committed.is_latest);
    assert_eq!(committed.retries, 0);
    let latest = store.latest().await.unwrap().unwrap();
    assert_eq!((latest.step, &latest.prefix), (10, &committed.prefix));
    let (loaded, refusals) = store.load_newest_valid().await.unwrap();
    let loaded = loaded.unwrap();
    assert!(refusals.is_empty());
    assert_eq!(loaded.manifest.step, 10);
    assert_eq!(loaded.object("a.bin").unwrap(), &objects(10)[0].1);
    assert_eq!(loaded.manifest.objects.len(), 2);
    assert_eq!(
        loaded.manifest.objects[1].sha256,
        sha256_hex(b"state at 10")
    );
    assert!(loaded.object("missing").is_err());
}

#[tokio::test]
async fn keeps_the_newest_k_and_deletes_prefixes_without_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 2);
    // What a writer that crashed before its manifest leaves behind.
    let orphan = store.location().join("step-0000000015-deadbeef");
    orphan
        .put("a.bin", Bytes::from_static(b"partial"))
        .await
        .unwrap();
    for step in [10, 20, 30, 40] {
        store.commit(manifest(step), objects(step)).await.unwrap();
    }
    let left = store.prefixes().await.unwrap();
    let steps: Vec<(u64, bool)> = left.iter().map(|(_, s, m)| (*s, *m)).collect();
    assert_eq!(steps, vec![(30, true), (40, true)]);
    assert_eq!(store.latest().await.unwrap().unwrap().step, 40);
    assert!(orphan.list("").await.unwrap().is_empty());
    // No empty directory is left where a deleted checkpoint was.
    let mut on_disk: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("step-"))
        .collect();
    on_disk.sort();
    let kept: Vec<String> = left.iter().map(|(prefix, _, _)| prefix.clone()).collect();
    assert_eq!(on_disk, kept);
}

#[tokio::test]
async fn a_checkpoint_is_named_by_prefix_step_or_the_start_of_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 5);
    let err = store.resolve("latest").await.unwrap_err();
    assert!(
        err.to_string().contains("holds no committed checkpoint"),
        "{err}"
    );
    // A writer that crashed before its manifest: never a match.
    let orphan = store.location().join("step-0000000030-deadbeef");
    orphan
        .put("a.bin", Bytes::from_static(b"partial"))
        .await
        .unwrap();
    let mut prefixes = Vec::new();
    for step in [10, 20, 100] {
        prefixes.push(
            store
                .commit(manifest(step), objects(step))
                .await
                .unwrap()
                .prefix,
        );
    }
    assert_eq!(store.resolve("latest").await.unwrap(), prefixes[2]);
    assert_eq!(store.resolve(&prefixes[1]).await.unwrap(), prefixes[1]);
    assert_eq!(store.resolve("20").await.unwrap(), prefixes[1]);
    assert_eq!(store.resolve("step-0000000010").await.unwrap(), prefixes[0]);
    for (name, what) in [
        ("30", "matches no committed checkpoint"),
        ("step-00000000", "matches more than one"),
        ("step-0000000011", "matches no committed checkpoint"),
    ] {
        let err = store.resolve(name).await.unwrap_err().to_string();
        assert!(err.contains(what), "{name}: {err}");
        assert!(
            err.contains(&prefixes[0]) && err.contains(&prefixes[2]),
            "{err}"
        );
        assert!(
            !err.contains("deadbeef"),
            "the orphan is not committed: {err}"
        );
    }
}

#[tokio::test]
async fn a_corrupt_object_refuses_its_checkpoint_and_the_previous_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 3);
    store.commit(manifest(10), objects(10)).await.unwrap();
    let newest = store.commit(manifest(20), objects(20)).await.unwrap();
    let mut bad = objects(20)[0].1.to_vec();
    bad[500] ^= 1;
    store
        .location()
        .join(&newest.prefix)
        .put("a.bin", Bytes::from(bad))
        .await
        .unwrap();
    let (loaded, refusals) = store.load_newest_valid().await.unwrap();
    assert_eq!(loaded.unwrap().manifest.step, 10);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains(&format!("{}/a.bin", newest.prefix))
            && refusals[0].contains("SHA-256"),
        "{}",
        refusals[0]
    );
    // A missing object refuses it the same way.
    store
        .location()
        .join(&newest.prefix)
        .delete("a.bin")
        .await
        .unwrap();
    let (loaded, refusals) = store.load_newest_valid().await.unwrap();
    assert_eq!(loaded.unwrap().manifest.step, 10);
    assert!(refusals[0].contains("a.bin"), "{}", refusals[0]);
}

#[tokio::test]
async fn a_manifest_that_does_not_match_the_pointer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 3);
    store.commit(manifest(10), objects(10)).await.unwrap();
    let newest = store.commit(manifest(20), objects(20)).await.unwrap();
    let location = store.location().join(&newest.prefix);
    let mut text = String::from_utf8(location.get(MANIFEST).await.unwrap().to_vec()).unwrap();
    text = text.replace("\"epoch\": 2", "\"epoch\": 3");
    location.put(MANIFEST, text).await.unwrap();
    let (loaded, refusals) = store.load_newest_valid().await.unwrap();
    assert_eq!(loaded.unwrap().manifest.step, 10);
    assert!(
        refusals[0].contains("recorded in `latest`"),
        "{}",
        refusals[0]
    );
}

#[tokio::test]
async fn nothing_usable_is_none_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 3);
    let (loaded, refusals) = store.load_newest_valid().await.unwrap();
    assert!(loaded.is_none() && refusals.is_empty());
}

#[tokio::test]
async fn latest_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 5);
    store.commit(manifest(50), objects(50)).await.unwrap();
    let older = store.commit(manifest(30), objects(30)).await.unwrap();
    assert!(!older.is_latest);
    assert_eq!(store.latest().await.unwrap().unwrap().step, 50);
}

async fn conditional_put_refuses_a_stale_version(root: StoreLocation) {
    assert!(root.get_versioned("p").await.unwrap().is_none());
    root.put_if("p", Bytes::from_static(b"one"), None)
        .await
        .unwrap();
    // Creating again when it exists is a conflict.
    let err = root
        .put_if("p", Bytes::from_static(b"two"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PointerConflict { .. }), "{err}");
    let (_, first) = root.get_versioned("p").await.unwrap().unwrap();
    root.put_if("p", Bytes::from_static(b"two"), Some(first.clone()))
        .await
        .unwrap();
    // `first` is stale now.
    let err = root
        .put_if("p", Bytes::from_static(b"three"), Some(first))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PointerConflict { .. }), "{err}");
    assert_eq!(&root.get("p").await.unwrap()[..], b"two");
}

#[tokio::test]
async fn conditional_put_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    conditional_put_refuses_a_stale_version(StoreLocation::local(dir.path(), false).unwrap()).await;
}

#[tokio::test]
async fn conditional_put_in_memory() {
    let root = StoreLocation::from_store(Arc::new(InMemory::new()), Path::default(), "memory");
    conditional_put_refuses_a_stale_version(root).await;
}

#[tokio::test]
async fn large_objects_round_trip_through_multipart() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, 1);
    let big: Vec<u8> = (0..(11 << 20) + 3)
        .map(|i: usize| (i * 31 % 251) as u8)
        .collect();
    let committed = store
        .commit(
            manifest(1),
            vec![("big.bin".into(), Bytes::from(big.clone()))],
        )
        .await
        .unwrap();
    let loaded = store.load(&committed.prefix, None).await.unwrap();
    assert_eq!(loaded.object("big.bin").unwrap().as_ref(), &big[..]);
}

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = StoreLocation::local(dir.path(), false).unwrap();
    let err = CheckpointStore::new(root.clone(), options(0)).unwrap_err();
    assert!(err.to_string().contains("keep_checkpoints"), "{err}");
    let small_parts = CheckpointOptions {
        part_size: 1 << 20,
        ..options(1)
    };
    assert!(CheckpointStore::new(root, small_parts).is_err());
}

#[test]
fn prefix_steps_parse() {
    assert_eq!(step_of_prefix("step-0000000300-9f1c2a7b"), Some(300));
    assert_eq!(step_of_prefix("latest"), None);
    assert_eq!(step_of_prefix("step-x"), None);
}
