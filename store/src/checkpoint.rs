//! The checkpoint commit protocol. Under a job's `checkpoints/` location:
//!
//! ```text
//! step-0000000300-9f1c2a7b/generator.mpk ...   every object of one checkpoint, unique prefix
//! step-0000000300-9f1c2a7b/MANIFEST.json       written last: each object's size and SHA-256
//! latest                                       pointer to the newest manifest, conditional put
//! ```
//!
//! A checkpoint exists once its manifest exists; readers trust nothing else. The `latest`
//! pointer names the manifest and its SHA-256 and only moves forward, with a conditional put so
//! two writers cannot interleave. A crash at any point leaves `latest` on a complete checkpoint;
//! prefixes that never got a manifest are garbage and are deleted by the next commit, as are
//! committed checkpoints beyond the newest `keep`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::location::StoreLocation;
use crate::{failpoint, sha256_hex};

/// Where a job's checkpoints live under its output location.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The manifest object inside each checkpoint prefix.
pub const MANIFEST: &str = "MANIFEST.json";
/// The pointer object at the root of the checkpoints location.
pub const LATEST: &str = "latest";
/// Version of the manifest and pointer layout.
pub const MANIFEST_FORMAT: u32 = 1;
/// Checkpoint prefixes start with this, then the zero-padded step.
const PREFIX_STEM: &str = "step-";

/// One object of a checkpoint and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Where one rank's data stream stands. The order is a pure function of (shard seed, plan
/// world, epoch, rank), so these numbers are all a resumed rank needs to continue it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    pub rank: usize,
    pub next_step: u64,
    pub epoch: u64,
    pub batch_in_epoch: u64,
    pub shard_seed: u64,
    pub plan_world: usize,
}

/// The random state: every draw comes from a stream keyed by (seed, purpose, step, ...), so
/// the seed and the next step reproduce it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub scheme: String,
    pub seed: u64,
    pub next_step: u64,
}

/// What a checkpoint holds, written after all of its objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Training steps completed.
    pub step: u64,
    pub epoch: u64,
    pub created_unix_ms: u64,
    /// Who wrote it (worker id).
    pub writer: String,
    pub world_size: usize,
    pub data_positions: Vec<DataPosition>,
    pub rng: RngState,
    /// The job's full configuration, secrets removed.
    pub job: serde_json::Value,
    /// The trainer's description: model and optimizer settings, classes.
    pub trainer: serde_json::Value,
    /// SHA-256 over the parameter values (not their serialization), so runs in different
    /// processes can be compared: equal exactly when the models are bit-identical.
    #[serde(default)]
    pub parameters_sha256: String,
    /// Filled in by [`CheckpointStore::commit`].
    pub objects: Vec<ObjectEntry>,
}

/// The `latest` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestPointer {
    pub format: u32,
    pub prefix: String,
    pub step: u64,
    pub manifest_sha256: String,
}

/// Retries of one object on top of the store client's own request retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// How checkpoints are written and kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointOptions {
    /// Committed checkpoints to keep (the newest; at least 1).
    pub keep: usize,
    /// Objects larger than this go up as multipart uploads. Below it one PUT is faster
    /// (measured: a 9.4 MB object as two parts took 35 ms longer on s3s-fs).
    pub multipart_threshold: usize,
    /// Part size of multipart uploads (S3: at least 5 MiB).
    pub part_size: usize,
    /// Parts of one object in flight at once.
    pub part_concurrency: usize,
    /// Objects of one checkpoint uploaded at once.
    pub object_concurrency: usize,
    pub retry: RetryPolicy,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        Self {
            keep: 3,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            part_concurrency: 4,
            object_concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// A finished commit.
#[derive(Debug, Clone)]
pub struct Committed {
    pub prefix: String,
    pub step: u64,
    /// Bytes of every object and the manifest.
    pub bytes: u64,
    /// From the first upload to the pointer update.
    pub seconds: f64,
    /// Whether `latest` now names this checkpoint (false when a newer one was there already).
    pub is_latest: bool,
    /// Retries the uploads needed.
    pub retries: u32,
    /// Prefixes deleted afterwards: beyond `keep`, or without a manifest.
    pub deleted: Vec<String>,
}

/// A checkpoint read back with every object verified against its manifest.
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    pub prefix: String,
    pub manifest: Manifest,
    pub objects: HashMap<String, Bytes>,
}

impl LoadedCheckpoint {
    /// One verified object; an error names it when the manifest lacks it.
    pub fn object(&self, name: &str) -> Result<&Bytes> {
        self.objects.get(name).ok_or_else(|| {
            Error::checkpoint(
                format!("{}/{MANIFEST}", self.prefix),
                format!("lists no `{name}`"),
            )
        })
    }
}

/// The checkpoints of one job, under one location.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: StoreLocation,
    options: CheckpointOptions,
}

fn step_of_prefix(prefix: &str) -> Option<u64> {
    prefix
        .strip_prefix(PREFIX_STEM)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl CheckpointStore {
    pub fn new(root: StoreLocation, options: CheckpointOptions) -> Result<Self> {
        if options.keep == 0 {
            return Err(Error::config("keep_checkpoints", "must keep at least 1"));
        }
        if options.part_size < 5 << 20 {
            return Err(Error::config(
                "part_size",
                format!(
                    "{} bytes is below S3's 5 MiB minimum part",
                    options.part_size
                ),
            ));
        }
        Ok(Self { root, options })
    }

    /// The checkpoints of the job whose output is `output` (under `checkpoints/`).
    pub fn for_output(output: &StoreLocation, options: CheckpointOptions) -> Result<Self> {
        Self::new(output.join(CHECKPOINTS_DIR), options)
    }

    pub fn location(&self) -> &StoreLocation {
        &self.root
    }

    /// Writes `objects` under a new prefix, then the manifest, then moves `latest` to it, then
    /// deletes what retention and garbage collection allow. Transient store errors are retried
    /// per object with backoff; when retries run out the error is returned and `latest` still
    /// names the previous checkpoint.
    pub async fn commit(
        &self,
        mut manifest: Manifest,
        objects: Vec<(String, Bytes)>,
    ) -> Result<Committed> {
        let started = Instant::now();
        let step = manifest.step;
        let prefix = format!("{PREFIX_STEM}{step:010}-{:08x}", rand::random::<u32>());
        manifest.format = MANIFEST_FORMAT;
        manifest.created_unix_ms = unix_ms();
        manifest.objects = objects
            .iter()
            .map(|(name, bytes)| ObjectEntry {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        let location = self.root.join(&prefix);
        let options = self.options;
        // Owned items: the commit runs in spawned tasks, whose futures must not borrow.
        let uploads = futures::stream::iter(objects.into_iter().map(|(name, bytes)| {
            let location = location.clone();
            async move {
                retrying(options.retry, &location.describe(&name), || {
                    location.put_large(
                        &name,
                        bytes.clone(),
                        options.multipart_threshold,
                        options.part_size,
                        options.part_concurrency,
                    )
                })
                .await
            }
        }))
        .buffer_unordered(options.object_concurrency.max(1))
        .collect::<Vec<Result<((), u32)>>>()
        .await;
        let mut retries = 0;
        for upload in uploads {
            retries += upload?.1;
        }
        failpoint::hit("abort-before-manifest", step);

        let manifest_bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).map_err(|e| {
            Error::checkpoint(location.describe(MANIFEST), format!("cannot encode: {e}"))
        })?);
        let ((), manifest_retries) = retrying(options.retry, &location.describe(MANIFEST), || {
            location.put(MANIFEST, manifest_bytes.clone())
        })
        .await?;
        let pointer = LatestPointer {
            format: MANIFEST_FORMAT,
            prefix: prefix.clone(),
            step,
            manifest_sha256: sha256_hex(&manifest_bytes),
        };
        let (is_latest, pointer_retries) =
            retrying(options.retry, &self.root.describe(LATEST), || {
                self.advance_latest(&pointer)
            })
            .await?;
        let retries = retries + manifest_retries + pointer_retries;
        let bytes =
            manifest_bytes.len() as u64 + manifest.objects.iter().map(|o| o.size).sum::<u64>();
        let seconds = started.elapsed().as_secs_f64();
        let deleted = match self.collect_garbage().await {
            Ok(deleted) => deleted,
            Err(error) => {
                tracing::warn!(%error, "checkpoint cleanup failed; will retry after the next commit");
                Vec::new()
            }
        };
        Ok(Committed {
            prefix,
            step,
            bytes,
            seconds,
            is_latest,
            retries,
            deleted,
        })
    }

    /// Moves `latest` to `pointer` unless it already names a newer step. Returns whether it
    /// now names `pointer`.
    async fn advance_latest(&self, pointer: &LatestPointer) -> Result<bool> {
        let current = self.root.get_versioned(LATEST).await?;
        let version = match current {
            None => None,
            Some((bytes, version)) => {
                if let Ok(existing) = serde_json::from_slice::<LatestPointer>(&bytes)
                    && existing.step > pointer.step
                {
                    tracing::warn!(
                        latest = existing.step,
                        ours = pointer.step,
                        "a newer checkpoint is already latest; leaving the pointer"
                    );
                    return Ok(false);
                }
                Some(version)
            }
        };
        let bytes = serde_json::to_vec_pretty(pointer).map_err(|e| {
            Error::checkpoint(self.root.describe(LATEST), format!("cannot encode: {e}"))
        })?;
        self.root
            .put_if(LATEST, Bytes::from(bytes), version)
            .await?;
        Ok(true)
    }

    /// The `latest` pointer; `None` when no checkpoint was ever committed here.
    pub async fn latest(&self) -> Result<Option<LatestPointer>> {
        let Some((bytes, _)) = self.root.get_versioned(LATEST).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::checkpoint(self.root.describe(LATEST), format!("is not a pointer: {e}"))
        })
    }

    /// Every checkpoint prefix and whether it has a manifest, by step (oldest first).
    pub async fn prefixes(&self) -> Result<Vec<(String, u64, bool)>> {
        let mut found: BTreeMap<(u64, String), bool> = BTreeMap::new();
        for (key, _) in self.root.list("").await? {
            let Some((prefix, rest)) = key.split_once('/') else {
                continue;
            };
            let Some(step) = step_of_prefix(prefix) else {
                continue;
            };
            let has_manifest = found.entry((step, prefix.to_string())).or_insert(false);
            *has_manifest |= rest == MANIFEST;
        }
        Ok(found
            .into_iter()
            .map(|((step, prefix), has_manifest)| (prefix, step, has_manifest))
            .collect())
    }

    /// Reads and parses a manifest without fetching its objects.
    pub async fn manifest(&self, prefix: &str) -> Result<(Manifest, String)> {
        let location = self.root.join(prefix);
        let bytes = location.get(MANIFEST).await?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::checkpoint(
                location.describe(MANIFEST),
                format!("is not a manifest: {e}"),
            )
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Error::checkpoint(
                location.describe(MANIFEST),
                format!(
                    "format {} is not the supported {MANIFEST_FORMAT}",
                    manifest.format
                ),
            ));
        }
        Ok((manifest, sha256_hex(&bytes)))
    }

    /// Reads one checkpoint and verifies every object's size and SHA-256 (and the manifest's
    /// own, when the pointer recorded it). Any mismatch refuses the whole checkpoint.
    pub async fn load(
        &self,
        prefix: &str,
        expected_manifest_sha256: Option<&str>,
    ) -> Result<LoadedCheckpoint> {
        let location = self.root.join(prefix);
        let (manifest, manifest_sha256) = self.manifest(prefix).await?;
        if let Some(expected) = expected_manifest_sha256
            && expected != manifest_sha256
        {
            return Err(Error::checkpoint(
                location.describe(MANIFEST),
                format!(
                    "SHA-256 {manifest_sha256} does not match {expected} recorded in `{LATEST}`"
                ),
            ));
        }
        let fetched = futures::stream::iter(manifest.objects.iter().cloned().map(|entry| {
            let location = location.clone();
            async move {
                let bytes = location.get(&entry.name).await?;
                if bytes.len() as u64 != entry.size {
                    return Err(Error::checkpoint(
                        location.describe(&entry.name),
                        format!("is {} bytes, the manifest says {}", bytes.len(), entry.size),
                    ));
                }
                let actual = sha256_hex(&bytes);
                if actual != entry.sha256 {
                    return Err(Error::checkpoint(
                        location.describe(&entry.name),
                        format!(
                            "SHA-256 {actual} does not match the manifest's {}",
                            entry.sha256
                        ),
                    ));
                }
                Ok((entry.name.clone(), bytes))
            }
        }))
        .buffer_unordered(self.options.object_concurrency.max(1))
        .collect::<Vec<Result<(String, Bytes)>>>()
        .await;
        let objects = fetched.into_iter().collect::<Result<HashMap<_, _>>>()?;
        Ok(LoadedCheckpoint {
            prefix: prefix.to_string(),
            manifest,
            objects,
        })
    }

    /// The newest checkpoint that verifies: the one `latest` names, else older committed ones,
    /// newest first. Each refused checkpoint is returned with the reason (and logged), so the
    /// caller can report it. `None` when nothing usable exists.
    pub async fn load_newest_valid(&self) -> Result<(Option<LoadedCheckpoint>, Vec<String>)> {
        let mut refusals = Vec::new();
        let latest = match self.latest().await {
            Ok(latest) => latest,
            Err(error @ Error::Checkpoint { .. }) => {
                refusals.push(error.to_string());
                None
            }
            Err(error) => return Err(error),
        };
        let committed = self.prefixes().await?;
        let mut candidates: Vec<(String, Option<String>)> = Vec::new();
        if let Some(pointer) = &latest {
            candidates.push((
                pointer.prefix.clone(),
                Some(pointer.manifest_sha256.clone()),
            ));
        }
        // Older manifests, newest first; never one newer than `latest` (its writer may have
        // been fenced off before it could advance the pointer).
        for (prefix, step, has_manifest) in committed.into_iter().rev() {
            let newer = latest.as_ref().is_some_and(|p| step > p.step);
            let named = latest.as_ref().is_some_and(|p| p.prefix == prefix);
            if has_manifest && !newer && !named {
                candidates.push((prefix, None));
            }
        }
        for (prefix, expected) in candidates {
            match self.load(&prefix, expected.as_deref()).await {
                Ok(loaded) => return Ok((Some(loaded), refusals)),
                Err(error) if is_refusal(&error) => {
                    tracing::warn!(%error, checkpoint = %prefix, "refusing checkpoint; trying the previous one");
                    refusals.push(error.to_string());
                }
                Err(error) => return Err(error),
            }
        }
        Ok((None, refusals))
    }

    /// Deletes committed checkpoints beyond the newest `keep` (never the one `latest` names)
    /// and every prefix without a manifest. Manifests go first, so no reader ever finds a
    /// manifest whose objects are gone. Only the job's single writer calls this, after its
    /// own commit, so no manifest-less prefix is still being written.
    pub async fn collect_garbage(&self) -> Result<Vec<String>> {
        let latest = self.latest().await.ok().flatten().map(|p| p.prefix);
        let prefixes = self.prefixes().await?;
        let committed: Vec<&String> = prefixes
            .iter()
            .filter(|(_, _, has_manifest)| *has_manifest)
            .map(|(prefix, _, _)| prefix)
            .collect();
        let keep_from = committed.len().saturating_sub(self.options.keep);
        let mut doomed: Vec<String> = committed[..keep_from]
            .iter()
            .filter(|prefix| latest.as_deref() != Some(prefix.as_str()))
            .map(|prefix| prefix.to_string())
            .collect();
        doomed.extend(
            prefixes
                .iter()
                .filter(|(_, _, has_manifest)| !has_manifest)
                .map(|(prefix, _, _)| prefix.clone()),
        );
        for prefix in &doomed {
            let location = self.root.join(prefix);
            location.delete(MANIFEST).await?;
            for (key, _) in location.list("").await? {
                location.delete(&key).await?;
            }
            // On local disk deleting the objects leaves their directory behind, which reads
            // like a checkpoint to anyone listing the folder; remove it once empty.
            if let Some(dir) = location.local_dir() {
                match tokio::fs::remove_dir(&dir).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        dir = %dir.display(),
                        error = %e,
                        "could not remove a deleted checkpoint's directory"
                    ),
                }
            }
            tracing::info!(checkpoint = %prefix, "deleted checkpoint prefix");
        }
        Ok(doomed)
    }
}

/// Runs `operation`, retrying transient failures with exponential backoff up to the policy's
/// attempts; returns the value and how many retries it took.
async fn retrying<T, F, Fut>(policy: RetryPolicy, what: &str, mut operation: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = policy.first_backoff;
    let mut attempt = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok((value, attempt - 1)),
            Err(error) if error.is_transient() && attempt < policy.attempts => {
                tracing::warn!(object = %what, attempt, %error, backoff_ms = backoff.as_millis() as u64, "checkpoint write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A fault of one checkpoint (corrupt, truncated, an object missing), which an older checkpoint
/// may not share. Network trouble and credentials are not: falling back past them would quietly
/// resume from older state, so they are returned instead.
fn is_refusal(error: &Error) -> bool {
    matches!(
        error,
        Error::Checkpoint { .. }
            | Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
    )
}

mod resolve;
#[cfg(test)]
mod tests;
