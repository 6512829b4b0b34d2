//! Loading a dataset from a [`StoreLocation`]: local disk and S3 share this one code path.

use anygan_proto::job::{DatasetFormat, DatasetSource};

use super::folder::{ImageFolderEntry, decode_image_folder, is_image_file};
use super::subset::{FASHION_MNIST_CLASSES, per_class_subset};
use super::{ImageDataset, ImageShape, parse_idx_pair};
use crate::error::{Error, Result};
use anygan_store::StoreLocation;

/// How the files of a dataset are laid out under its location.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DatasetLayout {
    /// An IDX images file and its IDX labels file (gzip or raw), relative to the location.
    Idx {
        images: String,
        labels: String,
        /// Names of the classes; labels must lie in `0..class_names.len()`.
        class_names: Vec<String>,
    },
    /// `<class>/<image>.png|jpg` sub-folders directly under the location.
    ImageFolder,
}

/// A dataset to load: where, in which layout, and the image shape the model wants.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub location: StoreLocation,
    pub layout: DatasetLayout,
    /// Images are resized and converted to this shape.
    pub shape: ImageShape,
}

/// Reads and decodes a whole dataset into memory.
pub async fn load_dataset(spec: &DatasetSpec) -> Result<ImageDataset> {
    let dataset = match &spec.layout {
        DatasetLayout::Idx {
            images,
            labels,
            class_names,
        } => {
            let image_bytes = spec.location.get(images).await?;
            let label_bytes = spec.location.get(labels).await?;
            parse_idx_pair(
                &image_bytes,
                &spec.location.describe(images),
                &label_bytes,
                &spec.location.describe(labels),
                class_names.clone(),
            )?
        }
        DatasetLayout::ImageFolder => load_image_folder(&spec.location, spec.shape).await?,
    };
    dataset.resized(spec.shape)
}

/// Loads the dataset a job names, resized to `shape`, cut to its per-class counts if any.
/// `store_options` configure the object store (endpoint, region, ...).
pub async fn load_source(
    source: &DatasetSource,
    shape: ImageShape,
    store_options: &[(String, String)],
) -> Result<ImageDataset> {
    let location = StoreLocation::parse(&source.location, store_options.iter().cloned(), false)?;
    let (layout, unnamed_classes) = match &source.format {
        DatasetFormat::FashionMnist { test } => {
            let prefix = if *test { "t10k" } else { "train" };
            let layout = DatasetLayout::Idx {
                images: format!("{prefix}-images-idx3-ubyte.gz"),
                labels: format!("{prefix}-labels-idx1-ubyte.gz"),
                class_names: FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            (layout, false)
        }
        DatasetFormat::Idx {
            images,
            labels,
            class_names,
        } => {
            let unnamed = class_names.is_empty();
            let class_names = if unnamed {
                // any byte label is accepted, then the classes are trimmed to 0..=max label
                (0..=255u16).map(|i| i.to_string()).collect()
            } else {
                class_names.clone()
            };
            let layout = DatasetLayout::Idx {
                images: images.clone(),
                labels: labels.clone(),
                class_names,
            };
            (layout, unnamed)
        }
        DatasetFormat::Folder => (DatasetLayout::ImageFolder, false),
    };
    let mut dataset = load_dataset(&DatasetSpec {
        location,
        layout,
        shape,
    })
    .await?;
    if unnamed_classes {
        let max = dataset.labels().iter().copied().max().unwrap_or(0);
        dataset = dataset.with_class_names((0..=max).map(|i| i.to_string()).collect())?;
    }
    if let Some(counts) = &source.class_counts {
        let keep = per_class_subset(dataset.labels(), counts, source.subset_seed)?;
        dataset = dataset.select(&keep)?;
    }
    Ok(dataset)
}

async fn load_image_folder(location: &StoreLocation, shape: ImageShape) -> Result<ImageDataset> {
    let root = location.to_string();
    let mut class_folders = Vec::new();
    // Object stores have no empty folders; on local disk an empty class folder is a user's
    // mistake worth naming, so look for them there.
    if let Some(dir) = location.local_dir() {
        let read = std::fs::read_dir(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in read {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            if entry.path().is_dir() {
                class_folders.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut entries = Vec::new();
    for (key, _meta) in location.list("").await? {
        let Some((class, file)) = key.split_once('/') else {
            continue; // files beside the class folders (README, LICENSE) are not images of a class
        };
        if file.contains('/') {
            return Err(Error::dataset(
                &root,
                format!("`{key}` is nested deeper than root/<class>/<image>"),
            ));
        }
        if !is_image_file(file) {
            continue;
        }
        let bytes = location.get(&key).await?;
        entries.push(ImageFolderEntry {
            class: class.to_string(),
            path: location.describe(&key),
            bytes,
        });
    }
    decode_image_folder(&root, &class_folders, entries, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::folder::tests::png;
    use crate::data::idx::tests::{gzip, idx_bytes};

    fn no_options() -> std::iter::Empty<(&'static str, &'static str)> {
        std::iter::empty()
    }

    #[tokio::test]
    async fn loads_idx_from_local_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("img.gz"),
            gzip(&idx_bytes(&[2, 28, 28], &[7; 2 * 784])),
        )
        .expect("write");
        std::fs::write(dir.path().join("lab"), idx_bytes(&[2], &[1, 0])).expect("write");
        let spec = DatasetSpec {
            location: StoreLocation::parse(
                dir.path().to_str().expect("utf-8"),
                no_options(),
                false,
            )
            .expect("store"),
            layout: DatasetLayout::Idx {
                images: "img.gz".into(),
                labels: "lab".into(),
                class_names: vec!["x".into(), "y".into()],
            },
            shape: ImageShape::GRAY_28,
        };
        let data = load_dataset(&spec).await.expect("load");
        assert_eq!(data.class_counts(), vec![1, 1]);
        assert_eq!(data.image(0)[0], 7);
    }

    #[tokio::test]
    async fn loads_image_folder_and_names_empty_class() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (class, level) in [("bag", 10u8), ("coat", 20)] {
            std::fs::create_dir_all(dir.path().join(class)).expect("mkdir");
            std::fs::write(dir.path().join(class).join("1.png"), png(5, 5, level)).expect("write");
        }
        std::fs::write(dir.path().join("README.txt"), b"not a class").expect("write");
        let spec = DatasetSpec {
            location: StoreLocation::parse(
                dir.path().to_str().expect("utf-8"),
                no_options(),
                false,
            )
            .expect("store"),
            layout: DatasetLayout::ImageFolder,
            shape: ImageShape::GRAY_28,
        };
        let data = load_dataset(&spec).await.expect("load");
        assert_eq!(data.class_names(), &["bag".to_string(), "coat".to_string()]);
        assert_eq!(data.image(1)[0], 20);

        std::fs::create_dir_all(dir.path().join("dress")).expect("mkdir");
        let err = load_dataset(&spec).await.expect_err("empty class folder");
        assert!(err.to_string().contains("`dress`"), "{err}");
    }

    #[tokio::test]
    async fn missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = DatasetSpec {
            location: StoreLocation::parse(
                dir.path().to_str().expect("utf-8"),
                no_options(),
                false,
            )
            .expect("store"),
            layout: DatasetLayout::Idx {
                images: "absent-images.gz".into(),
                labels: "absent-labels.gz".into(),
                class_names: vec!["x".into()],
            },
            shape: ImageShape::GRAY_28,
        };
        let err = load_dataset(&spec).await.expect_err("missing");
        assert!(err.to_string().contains("absent-images.gz"), "{err}");
    }
}
