//! Where anygan reads and writes objects: a local directory (the default) or an S3-compatible
//! bucket, both behind one `object_store` code path.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};

/// A prefix inside an object store. Every key anygan uses is relative to it.
#[derive(Clone)]
pub struct StoreLocation {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    display: String,
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
    /// Parses `s3://bucket/prefix` (with builder options such as `aws_endpoint`,
    /// `aws_allow_http`, `aws_virtual_hosted_style_request`), `file:///dir`, or a plain directory
    /// path. A local directory is created when `create` is set.
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
        let (store, prefix) =
            object_store::parse_url_opts(&url, options).map_err(|e| Error::store(location, e))?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
            display: location.trim_end_matches('/').to_string(),
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
        }
    }

    /// The same store, one level deeper.
    pub fn join(&self, relative: &str) -> Self {
        Self {
            store: Arc::clone(&self.store),
            prefix: self.key(relative),
            display: format!("{}/{}", self.display, relative.trim_matches('/')),
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

    /// The local directory behind this location, when it is one.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        if self.display.contains("://") {
            None
        } else {
            Some(std::path::PathBuf::from(&self.display))
        }
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
