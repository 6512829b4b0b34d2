//! Where anygan reads and writes objects: a local directory (the default) or an S3-compatible
//! bucket, both behind one `object_store` code path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion, WriteMultipart,
};

use crate::error::{Error, Result};

/// Retries inside one object-store request (connection resets, 5xx): few and short, because the
/// checkpoint writer retries whole objects on top and must give up within a bounded time.
fn request_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    }
}

/// A prefix inside an object store. Every key anygan uses is relative to it.
#[derive(Clone)]
pub struct StoreLocation {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    display: String,
    /// The directory `prefix` names, when the store is local disk.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl StoreLocation {
    /// Parses `s3://bucket/prefix`, `file:///dir`, or a plain directory path. A local directory
    /// is created when `create` is set. For S3 the standard `AWS_*` environment variables are
    /// read first (credentials, `AWS_ENDPOINT`, `AWS_REGION`, ...), then `options` override them
    /// (`aws_endpoint`, `aws_allow_http`, `aws_virtual_hosted_style_request`, `timeout`, ...).
    /// Path-style addressing is the default, as self-hosted servers need.
    pub fn parse<K: AsRef<str>, V: Into<String>>(
        location: &str,
        options: impl IntoIterator<Item = (K, V)>,
        create: bool,
    ) -> Result<Self> {
        if let Some(dir) = location.strip_prefix("file://") {
            return Self::local(std::path::Path::new(dir), create);
        }
        if !location.contains("://") {
            return Self::local(std::path::Path::new(location), create);
        }
        let url = url::Url::parse(location)
            .map_err(|e| Error::config("store", format!("`{location}` is not a URL: {e}")))?;
        if url.scheme() != "s3" {
            return Err(Error::config(
                "store",
                format!("`{location}`: only s3:// URLs and local directories are supported"),
            ));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_url(location)
            .with_retry(request_retry());
        for (key, value) in options {
            let key = key.as_ref();
            let parsed: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| Error::config(key, "is not an S3 store option"))?;
            builder = builder.with_config(parsed, value);
        }
        let store = builder.build().map_err(|e| Error::store(location, e))?;
        let prefix = Path::parse(url.path().trim_start_matches('/'))
            .map_err(|e| Error::config("store", format!("`{location}`: {e}")))?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            display: location.trim_end_matches('/').to_string(),
            local_root: None,
        })
    }

    /// A local directory as an object store.
    pub fn local(dir: &std::path::Path, create: bool) -> Result<Self> {
        if create {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::store(dir.display().to_string(), e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            display: dir.display().to_string(),
            local_root: Some(dir.to_path_buf()),
        })
    }

    /// Wraps an existing store (e.g. an in-memory one in unit tests).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        display: impl Into<String>,
    ) -> Self {
        Self {
            store,
            prefix,
            display: display.into(),
            local_root: None,
        }
    }

    /// The same store, one level deeper.
    pub fn join(&self, relative: &str) -> Self {
        Self {
            store: Arc::clone(&self.store),
            prefix: self.key(relative),
            display: format!("{}/{}", self.display, relative.trim_matches('/')),
            local_root: self
                .local_root
                .as_ref()
                .map(|dir| dir.join(relative.trim_matches('/'))),
        }
    }

    /// The full key of `relative` inside this location.
    pub fn key(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |path, part| path.clone().join(part))
    }

    /// How `relative` is shown in messages.
    pub fn describe(&self, relative: &str) -> String {
        format!("{}/{}", self.display, relative.trim_matches('/'))
    }

    pub async fn get(&self, relative: &str) -> Result<Bytes> {
        let key = self.key(relative);
        let describe = || self.describe(relative);
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| Error::store(describe(), e))?;
        result
            .bytes()
            .await
            .map_err(|e| Error::store(describe(), e))
    }

    pub async fn put(&self, relative: &str, bytes: impl Into<Bytes>) -> Result<()> {
        self.store
            .put(&self.key(relative), PutPayload::from_bytes(bytes.into()))
            .await
            .map_err(|e| Error::store(self.describe(relative), e))?;
        Ok(())
    }

    /// Every object below `relative`, with keys relative to this location, sorted by key.
    pub async fn list(&self, relative: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let prefix = self.key(relative);
        let mut objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store(self.describe(relative), e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let base: Vec<_> = self.prefix.parts().collect();
        Ok(objects
            .into_iter()
            .map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .parts()
                    .skip(base.len())
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (parts.join("/"), meta)
            })
            .collect())
    }

    /// Reads `relative` with the version a conditional [`Self::put_if`] needs; `None` when absent.
    pub async fn get_versioned(&self, relative: &str) -> Result<Option<(Bytes, UpdateVersion)>> {
        let describe = || self.describe(relative);
        let result = match self.store.get(&self.key(relative)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(describe(), e)),
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| Error::store(describe(), e))?;
        Ok(Some((bytes, version)))
    }

    /// Writes `relative` only if it is unchanged since it was read at `expected` (absent when
    /// `None`): S3 `If-Match`/`If-None-Match`; on local disk an exclusive file lock around
    /// compare-and-rename, since `object_store`'s local store has no conditional update.
    /// Another writer in between → [`Error::PointerConflict`].
    pub async fn put_if(
        &self,
        relative: &str,
        bytes: Bytes,
        expected: Option<UpdateVersion>,
    ) -> Result<()> {
        if let Some(dir) = self.local_dir() {
            return self.put_if_local(&dir, relative, bytes, expected).await;
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(version) => PutMode::Update(version),
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.key(relative), PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Err(Error::PointerConflict {
                location: self.describe(relative),
            }),
            Err(e) => Err(Error::store(self.describe(relative), e)),
        }
    }

    async fn put_if_local(
        &self,
        dir: &std::path::Path,
        relative: &str,
        bytes: Bytes,
        expected: Option<UpdateVersion>,
    ) -> Result<()> {
        let lock_path = dir.join(format!("{}.lock", relative.trim_matches('/')));
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::config(lock_path.display().to_string(), e.to_string()))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::config(lock_path.display().to_string(), e.to_string()))?;
        // Held until this function returns; the lock is released when the file closes.
        lock.lock()
            .map_err(|e| Error::config(lock_path.display().to_string(), e.to_string()))?;
        let current = self.get_versioned(relative).await?.map(|(_, v)| v.e_tag);
        if current != expected.map(|v| v.e_tag) {
            return Err(Error::PointerConflict {
                location: self.describe(relative),
            });
        }
        self.put(relative, bytes).await
    }

    /// Uploads `bytes` to `relative`; objects larger than `threshold` go up as a multipart
    /// upload of `part_size` parts with up to `concurrency` in flight (S3 needs parts of at least
    /// 5 MiB).
    pub async fn put_large(
        &self,
        relative: &str,
        bytes: Bytes,
        threshold: usize,
        part_size: usize,
        concurrency: usize,
    ) -> Result<()> {
        if bytes.len() <= threshold.max(part_size) {
            return self.put(relative, bytes).await;
        }
        let describe = || self.describe(relative);
        let upload = self
            .store
            .put_multipart(&self.key(relative))
            .await
            .map_err(|e| Error::store(describe(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + part_size).min(bytes.len());
            writer
                .wait_for_capacity(concurrency.max(1))
                .await
                .map_err(|e| Error::store(describe(), e))?;
            writer.put(bytes.slice(offset..end));
            offset = end;
        }
        // On error `finish` aborts the upload, so no parts are left behind.
        writer
            .finish()
            .await
            .map_err(|e| Error::store(describe(), e))?;
        Ok(())
    }

    /// Deletes `relative`; an absent object is not an error.
    pub async fn delete(&self, relative: &str) -> Result<()> {
        match self.store.delete(&self.key(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(self.describe(relative), e)),
        }
    }

    /// Checks that this location can be written, read and deleted, before any work depends on
    /// it: a wrong key, a missing bucket or a read-only mount fails here, named.
    pub async fn check_writable(&self) -> Result<()> {
        let probe = format!(".anygan-probe-{:016x}", rand::random::<u64>());
        let hint = |e: Error| -> Error {
            let text = e.to_string();
            let detail = if text.contains("NoSuchBucket") {
                " (the bucket does not exist)"
            } else if [
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AccessDenied",
                "403",
            ]
            .iter()
            .any(|code| text.contains(code))
            {
                " (check the credentials)"
            } else {
                ""
            };
            Error::NotWritable {
                location: self.display.clone(),
                reason: format!("{text}{detail}"),
            }
        };
        // Listing first: some servers (s3s-fs) create a missing bucket on the first write.
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| hint(Error::store(self.display.clone(), e)))?;
        self.put(&probe, Bytes::from_static(b"anygan write check"))
            .await
            .map_err(hint)?;
        self.get(&probe).await.map_err(hint)?;
        self.delete(&probe).await.map_err(hint)
    }

    /// The local directory behind this location, when it is one.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        self.local_root.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_on_local_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = StoreLocation::parse(
            dir.path().join("out").to_str().expect("utf-8 path"),
            std::iter::empty::<(&str, &str)>(),
            true,
        )
        .expect("local store");
        let nested = root.join("a/b");
        nested.put("c.bin", vec![1u8, 2, 3]).await.expect("put");
        root.put("top.bin", vec![9u8]).await.expect("put");
        assert_eq!(&root.get("a/b/c.bin").await.expect("get")[..], &[1, 2, 3]);
        let listed: Vec<String> = root
            .list("")
            .await
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, vec!["a/b/c.bin".to_string(), "top.bin".to_string()]);
        let err = root.get("missing.bin").await.expect_err("absent");
        assert!(err.to_string().contains("missing.bin"), "{err}");
    }
}
