//! The real Fashion-MNIST files from Debian's `dataset-fashion-mnist` (installed by `.ci/run`):
//! parsed through the object-store path, and cut to BENCHMARK.md's long-tailed sets.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use anygan_proto::job::{DatasetFormat, DatasetSource};
use anygan_worker::data::{
    ImageDataset, ImageShape, LONG_TAIL_TEST_COUNTS, LONG_TAIL_TRAIN_COUNTS, load_source,
    per_class_subset,
};

const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

async fn split(test: bool) -> ImageDataset {
    assert!(
        std::path::Path::new(FASHION_MNIST_DIR).is_dir(),
        "{FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist (.ci/run does)"
    );
    let source = DatasetSource {
        location: FASHION_MNIST_DIR.into(),
        format: DatasetFormat::FashionMnist { test },
        class_counts: None,
        subset_seed: 0,
    };
    load_source(&source, ImageShape::GRAY_28, &[])
        .await
        .expect("Fashion-MNIST parses")
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
    let train = split(false).await;
    assert_eq!(train.len(), 60_000);
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let test = split(true).await;
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
