//! IDX files (the MNIST format), gzip-compressed or raw, with errors that name file and record.

use std::io::Read;

use super::{ImageDataset, ImageShape};
use crate::error::{Error, Result};

/// IDX type code of unsigned bytes, the only element type image and label files use.
const IDX_UNSIGNED_BYTE: u8 = 0x08;
/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Refuse dimension products past this many bytes: a corrupt header must not allocate wildly.
const MAX_IDX_BYTES: usize = 1 << 34;

/// The content of one IDX file: its dimensions and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses an IDX file of unsigned bytes; gzip is detected by its magic bytes.
/// `name` is used in errors (a file path or an object key).
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let raw;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut decoded)
            .map_err(|e| {
                Error::dataset(name, format!("gzip stream is corrupt or truncated: {e}"))
            })?;
        raw = decoded;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(Error::dataset(
            name,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::dataset(
            name,
            format!(
                "wrong IDX magic {:02x?}: the first two bytes must be zero",
                &bytes[..4]
            ),
        ));
    }
    if bytes[2] != IDX_UNSIGNED_BYTE {
        return Err(Error::dataset(
            name,
            format!(
                "IDX element type 0x{:02x} is not unsigned byte (0x08)",
                bytes[2]
            ),
        ));
    }
    let ndims = usize::from(bytes[3]);
    let header_len = 4 + 4 * ndims;
    if ndims == 0 || bytes.len() < header_len {
        return Err(Error::dataset(
            name,
            format!("IDX header declares {ndims} dimensions but the file ends before them"),
        ));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| Error::dataset(name, format!("IDX dimensions {dims:?} are too large")))?;
    let body = &bytes[header_len..];
    if body.len() != expected {
        return Err(Error::dataset(
            name,
            format!(
                "IDX dimensions {dims:?} need {expected} data bytes, the file has {}",
                body.len()
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Parses an IDX images file (`[n, h, w]`) and its labels file (`[n]`) into a grayscale dataset.
pub fn parse_idx_pair(
    images: &[u8],
    images_name: &str,
    labels: &[u8],
    labels_name: &str,
    class_names: Vec<String>,
) -> Result<ImageDataset> {
    let images = parse_idx(images, images_name)?;
    let labels = parse_idx(labels, labels_name)?;
    let [count, height, width] = images.dims[..] else {
        return Err(Error::dataset(
            images_name,
            format!(
                "an image file must have 3 dimensions [n, h, w], found {:?}",
                images.dims
            ),
        ));
    };
    let [label_count] = labels.dims[..] else {
        return Err(Error::dataset(
            labels_name,
            format!(
                "a label file must have 1 dimension [n], found {:?}",
                labels.dims
            ),
        ));
    };
    if height == 0 || width == 0 {
        return Err(Error::dataset(
            images_name,
            format!("images of {height}x{width} pixels"),
        ));
    }
    if count != label_count {
        return Err(Error::dataset(
            labels_name,
            format!("{label_count} labels for {count} images in {images_name}"),
        ));
    }
    if let Some((record, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| usize::from(**l) >= class_names.len())
    {
        return Err(Error::dataset(
            labels_name,
            format!(
                "record {record}: label {label} is outside the class range 0..{}",
                class_names.len()
            ),
        ));
    }
    let shape = ImageShape {
        channels: 1,
        height,
        width,
    };
    let labels = labels.data.iter().map(|&l| u16::from(l)).collect();
    ImageDataset::new(shape, images.data, labels, class_names)
}

/// An IDX file of unsigned bytes with the given dimensions (`data` in row-major order).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &dim in dims {
        let dim = u32::try_from(dim)
            .map_err(|_| Error::config("idx", format!("dimension {dim} does not fit IDX")))?;
        out.extend(dim.to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// A gray dataset of at most 256 classes as the files of an IDX set: `images.idx`,
/// `labels.idx` and `classes.txt` (one class name a line), as `--format idx` reads them back.
pub fn idx_set_files(dataset: &ImageDataset) -> Result<[(&'static str, Vec<u8>); 3]> {
    let shape = dataset.shape();
    if shape.channels != 1 {
        return Err(Error::config(
            "image_shape",
            format!(
                "IDX holds gray images; these have {} channels",
                shape.channels
            ),
        ));
    }
    let labels = dataset
        .labels()
        .iter()
        .map(|&label| u8::try_from(label))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| {
            Error::config(
                "class_names",
                format!(
                    "IDX labels are bytes; {} classes do not fit",
                    dataset.num_classes()
                ),
            )
        })?;
    let count = dataset.len();
    let pixels: Vec<u8> = (0..count)
        .flat_map(|i| dataset.image(i).iter().copied())
        .collect();
    Ok([
        (
            "images.idx",
            encode_idx(&[count, shape.height, shape.width], &pixels)?,
        ),
        ("labels.idx", encode_idx(&[count], &labels)?),
        (
            "classes.txt",
            format!("{}\n", dataset.class_names().join("\n")).into_bytes(),
        ),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Encodes an IDX file of unsigned bytes.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, IDX_UNSIGNED_BYTE, dims.len() as u8];
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("write to memory");
        encoder.finish().expect("finish gzip")
    }

    fn classes(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn parses_raw_and_gzip_alike() {
        let images = idx_bytes(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let labels = idx_bytes(&[2], &[1, 0]);
        let raw = parse_idx_pair(&images, "i", &labels, "l", classes(2)).expect("raw");
        let gz =
            parse_idx_pair(&gzip(&images), "i", &gzip(&labels), "l", classes(2)).expect("gzip");
        assert_eq!(raw, gz);
        assert_eq!(raw.len(), 2);
        assert_eq!(raw.shape().height, 2);
        assert_eq!(raw.shape().width, 3);
        assert_eq!(raw.image(1), &[7, 8, 9, 10, 11, 12]);
        assert_eq!(raw.labels(), &[1, 0]);
    }

    fn error_of(images: &[u8], labels: &[u8], n_classes: usize) -> String {
        parse_idx_pair(images, "imgs.idx", labels, "labels.idx", classes(n_classes))
            .expect_err("bad input must fail")
            .to_string()
    }

    #[test]
    fn truncated_gzip_names_the_file() {
        let images = gzip(&idx_bytes(&[1, 2, 2], &[0; 4]));
        let truncated = &images[..images.len() - 6];
        let err = error_of(truncated, &idx_bytes(&[1], &[0]), 1);
        assert!(err.contains("imgs.idx") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut images = idx_bytes(&[1, 2, 2], &[0; 4]);
        images[0] = 7;
        let err = error_of(&images, &idx_bytes(&[1], &[0]), 1);
        assert!(err.contains("imgs.idx") && err.contains("magic"), "{err}");
        let mut images = idx_bytes(&[1, 2, 2], &[0; 4]);
        images[2] = 0x0d; // float elements
        assert!(error_of(&images, &idx_bytes(&[1], &[0]), 1).contains("element type"));
    }

    #[test]
    fn wrong_dimensions_are_refused() {
        let flat = idx_bytes(&[4], &[0; 4]);
        let err = error_of(&flat, &idx_bytes(&[1], &[0]), 1);
        assert!(
            err.contains("imgs.idx") && err.contains("3 dimensions"),
            "{err}"
        );
        let short_body = idx_bytes(&[2, 2, 2], &[0; 7]);
        let err = error_of(&short_body, &idx_bytes(&[2], &[0, 0]), 1);
        assert!(err.contains("need 8 data bytes, the file has 7"), "{err}");
        let label_matrix = idx_bytes(&[1, 1], &[0]);
        let err = error_of(&idx_bytes(&[1, 1, 1], &[0]), &label_matrix, 1);
        assert!(
            err.contains("labels.idx") && err.contains("1 dimension"),
            "{err}"
        );
        let huge = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(error_of(&huge, &idx_bytes(&[1], &[0]), 1).contains("too large"));
    }

    #[test]
    fn count_mismatch_is_refused() {
        let err = error_of(
            &idx_bytes(&[3, 1, 1], &[0; 3]),
            &idx_bytes(&[2], &[0; 2]),
            1,
        );
        assert!(err.contains("2 labels for 3 images"), "{err}");
    }

    #[test]
    fn label_outside_class_range_names_the_record() {
        let err = error_of(
            &idx_bytes(&[3, 1, 1], &[0; 3]),
            &idx_bytes(&[3], &[0, 1, 9]),
            2,
        );
        assert!(
            err.contains("labels.idx") && err.contains("record 2: label 9"),
            "{err}"
        );
    }

    #[test]
    fn truncated_header_is_refused() {
        let err = error_of(&[0, 0, 8], &idx_bytes(&[1], &[0]), 1);
        assert!(err.contains("too short"), "{err}");
        let err = error_of(&[0, 0, 8, 3, 0, 0], &idx_bytes(&[1], &[0]), 1);
        assert!(err.contains("ends before"), "{err}");
    }
}
