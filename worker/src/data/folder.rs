//! Image-folder datasets (`root/<class>/*.png|jpg`): decoding, resizing, class naming.

use std::collections::BTreeMap;

use super::{ImageDataset, ImageShape, dynamic_image_to_chw};
use crate::error::{Error, Result};

/// File extensions read as images; anything else in a class folder is ignored.
pub(crate) const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One file found under an image-folder root.
#[derive(Debug, Clone)]
pub struct ImageFolderEntry {
    /// The class sub-folder the file is in.
    pub class: String,
    /// Its path, for error messages.
    pub path: String,
    pub bytes: bytes::Bytes,
}

/// True when `name` has an image extension anygan reads.
pub(crate) fn is_image_file(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Decodes every entry, resizing to `shape`. Classes are the sorted folder names; every class in
/// `class_folders` must hold at least one image. Records are ordered by class, then by path, so
/// the same folder always gives the same dataset.
pub fn decode_image_folder(
    root: &str,
    class_folders: &[String],
    mut entries: Vec<ImageFolderEntry>,
    shape: ImageShape,
) -> Result<ImageDataset> {
    let mut class_names: Vec<String> = class_folders.to_vec();
    class_names.extend(entries.iter().map(|e| e.class.clone()));
    class_names.sort();
    class_names.dedup();
    if class_names.is_empty() {
        return Err(Error::dataset(
            root,
            "no class folders: expected root/<class>/<image>.png",
        ));
    }
    let class_index: BTreeMap<&str, u16> = class_names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i as u16))
        .collect();
    let mut counts = vec![0usize; class_names.len()];
    for entry in &entries {
        counts[usize::from(class_index[entry.class.as_str()])] += 1;
    }
    if let Some(empty) = counts.iter().position(|&c| c == 0) {
        return Err(Error::dataset(
            root,
            format!(
                "class folder `{}` holds no PNG or JPEG image",
                class_names[empty]
            ),
        ));
    }

    entries.sort_by(|a, b| (&a.class, &a.path).cmp(&(&b.class, &b.path)));
    let mut pixels = Vec::with_capacity(entries.len() * shape.pixel_count());
    let mut labels = Vec::with_capacity(entries.len());
    for entry in &entries {
        let image = image::load_from_memory(&entry.bytes).map_err(|e| Error::ImageDecode {
            source_name: root.to_string(),
            image: entry.path.clone(),
            reason: e.to_string(),
        })?;
        pixels.extend(dynamic_image_to_chw(&image, shape));
        labels.push(class_index[entry.class.as_str()]);
    }
    ImageDataset::new(shape, pixels, labels, class_names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of one gray level, for tests.
    pub(crate) fn png(width: u32, height: u32, level: u8) -> Vec<u8> {
        let image = image::GrayImage::from_pixel(width, height, image::Luma([level]));
        let mut out = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode png in memory");
        out.into_inner()
    }

    fn entry(class: &str, name: &str, bytes: Vec<u8>) -> ImageFolderEntry {
        ImageFolderEntry {
            class: class.into(),
            path: format!("root/{class}/{name}"),
            bytes: bytes.into(),
        }
    }

    #[test]
    fn decodes_sorted_classes_and_resizes() {
        let entries = vec![
            entry("shoe", "b.png", png(8, 8, 200)),
            entry("bag", "a.png", png(4, 4, 10)),
            entry("shoe", "a.png", png(28, 28, 100)),
        ];
        let data = decode_image_folder("root", &[], entries, ImageShape::GRAY_28).expect("decode");
        assert_eq!(data.class_names(), &["bag".to_string(), "shoe".to_string()]);
        assert_eq!(data.labels(), &[0, 1, 1]);
        assert!(data.image(0).iter().all(|&p| p == 10));
        assert!(data.image(1).iter().all(|&p| p == 100));
        assert!(data.image(2).iter().all(|&p| p == 200));
    }

    #[test]
    fn empty_class_folder_is_named() {
        let entries = vec![entry("bag", "a.png", png(2, 2, 1))];
        let err = decode_image_folder(
            "root",
            &["bag".into(), "coat".into()],
            entries,
            ImageShape::GRAY_28,
        )
        .expect_err("coat is empty");
        assert!(err.to_string().contains("`coat` holds no"), "{err}");
        let err =
            decode_image_folder("root", &[], vec![], ImageShape::GRAY_28).expect_err("no classes");
        assert!(err.to_string().contains("no class folders"), "{err}");
    }

    #[test]
    fn undecodable_image_is_named() {
        let entries = vec![
            entry("bag", "a.png", png(2, 2, 1)),
            entry("bag", "broken.png", b"\x89PNG not really".to_vec()),
        ];
        let err =
            decode_image_folder("root", &[], entries, ImageShape::GRAY_28).expect_err("bad png");
        assert!(err.to_string().contains("root/bag/broken.png"), "{err}");
    }

    #[test]
    fn image_extensions() {
        assert!(is_image_file("a.PNG") && is_image_file("x.jpeg") && is_image_file("y.jpg"));
        assert!(!is_image_file("README") && !is_image_file("notes.txt"));
    }
}
