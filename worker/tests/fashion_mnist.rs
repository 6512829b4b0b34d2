//! The real Fashion-MNIST files from Debian's `dataset-fashion-mnist` (installed by `.ci/run`):
//! parsed through the object-store path, and cut to BENCHMARK.md's long-tailed sets.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use anygan_worker::data::{
    DatasetLayout, DatasetSpec, FASHION_MNIST_CLASSES, ImageDataset, ImageShape,
    LONG_TAIL_TEST_COUNTS, LONG_TAIL_TRAIN_COUNTS, load_dataset, per_class_subset,
};
use anygan_worker::storage::StoreLocation;

const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

async fn split(prefix: &str) -> ImageDataset {
    assert!(
        std::path::Path::new(FASHION_MNIST_DIR).is_dir(),
        "{FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist (.ci/run does)"
    );
    let spec = DatasetSpec {
        location: StoreLocation::local(std::path::Path::new(FASHION_MNIST_DIR), false)
            .expect("store"),
        layout: DatasetLayout::Idx {
            images: format!("{prefix}-images-idx3-ubyte.gz"),
            labels: format!("{prefix}-labels-idx1-ubyte.gz"),
            class_names: FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
        shape: ImageShape::GRAY_28,
    };
    load_dataset(&spec).await.expect("Fashion-MNIST parses")
}

fn counts_of(dataset: &ImageDataset, indices: &[usize]) -> Vec<usize> {
    let mut counts = vec![0; dataset.num_classes()];
    for &i in indices {
        counts[usize::from(dataset.labels()[i])] += 1;
    }
    counts
}

#[tokio::test]
async fn official_splits_and_long_tailed_subsets() {
    let train = split("train").await;
    assert_eq!(train.len(), 60_000);
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let test = split("t10k").await;
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.class_counts(), vec![1000; 10]);

    let long_tail = per_class_subset(train.labels(), &LONG_TAIL_TRAIN_COUNTS, 0).expect("subset");
    assert_eq!(
        counts_of(&train, &long_tail),
        LONG_TAIL_TRAIN_COUNTS.to_vec()
    );
    assert_eq!(
        long_tail,
        per_class_subset(train.labels(), &LONG_TAIL_TRAIN_COUNTS, 0).expect("again")
    );
    let test_tail = per_class_subset(test.labels(), &LONG_TAIL_TEST_COUNTS, 0).expect("subset");
    assert_eq!(counts_of(&test, &test_tail), LONG_TAIL_TEST_COUNTS.to_vec());
    // Fashion-MNIST images are not blank: the mean pixel of the training split is about 73.
    let mean = (0..train.len())
        .flat_map(|i| train.image(i).iter().map(|&p| f64::from(p)))
        .sum::<f64>()
        / (train.len() * 784) as f64;
    assert!((60.0..90.0).contains(&mean), "mean pixel {mean}");
}
