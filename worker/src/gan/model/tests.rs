//! The discriminator's projection term, checked against a hand computation, and the auxiliary
//! classifier beside it.

use burn::module::Param;
use burn::nn::Embedding;
use burn::prelude::*;

use super::*;
use crate::backend::ComputeBackend;

type B = ComputeBackend;

const CLASSES: usize = 3;
const WIDTH: usize = 4;
/// φ(x)'s length for 28×28 images: W · 7 · 7.
const FEATURES: usize = WIDTH * 49;

fn projecting_discriminator() -> Discriminator<B> {
    let config = GanConfig::new(CLASSES)
        .with_width(WIDTH)
        .with_latent_dim(8)
        .with_projection(Some(true));
    crate::gan::tests::locked_init(&config).1
}

/// Three images of distinct content, one per class.
fn images_and_labels() -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let pixels: Vec<f32> = (0..3 * 784)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    (
        Tensor::<B, 1>::from_floats(pixels.as_slice(), &device).reshape([3, 1, 28, 28]),
        Tensor::<B, 1, Int>::from_ints([0, 2, 1], &device),
    )
}

fn values<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().expect("f32")
}

/// Asserts that two discriminators give the test images the same real/generated logits.
fn assert_same_logits(left: &Discriminator<B>, right: &Discriminator<B>, why: &str) {
    let (images, labels) = images_and_labels();
    assert_eq!(
        values(left.forward(images.clone(), labels.clone(), None)),
        values(right.forward(images, labels, None)),
        "{why}"
    );
}

#[test]
fn a_new_projection_is_zero_so_training_starts_from_the_recipe_discriminator() {
    let projecting = projecting_discriminator();
    assert!(projecting.has_projection());
    let class_vectors = projecting.class_projection.as_ref().expect("projection");
    assert!(values(class_vectors.weight.val()).iter().all(|&v| v == 0.0));

    let plain = Discriminator {
        class_projection: None,
        ..projecting.clone()
    };
    assert_same_logits(&projecting, &plain, "a zero projection adds nothing");
}

#[test]
fn the_logit_adds_the_class_vector_dotted_with_the_features() {
    let device = Default::default();
    // Class c's vector: entry j is (c + 1) · (1 + j mod 5) / 10, distinct per class.
    let class_vector =
        |class: usize, j: usize| (class as f32 + 1.0) * (1.0 + (j % 5) as f32) / 10.0;
    let table: Vec<f32> = (0..CLASSES)
        .flat_map(|c| (0..FEATURES).map(move |j| class_vector(c, j)))
        .collect();
    let mut discriminator = projecting_discriminator();
    discriminator.class_projection = Some(Embedding {
        weight: Param::from_tensor(
            Tensor::<B, 1>::from_floats(table.as_slice(), &device).reshape([CLASSES, FEATURES]),
        ),
    });

    let (images, labels) = images_and_labels();
    let features = values(discriminator.features(images.clone(), labels.clone(), None));
    let weights = values(discriminator.classifier.weight.val());
    let bias = values(discriminator.classifier.bias.as_ref().expect("bias").val())[0];
    let logits = values(discriminator.forward(images, labels, None));

    for (row, class) in [0usize, 2, 1].into_iter().enumerate() {
        let phi = &features[row * FEATURES..(row + 1) * FEATURES];
        let linear: f64 = phi
            .iter()
            .zip(&weights)
            .map(|(&f, &w)| f64::from(f) * f64::from(w))
            .sum::<f64>()
            + f64::from(bias);
        let projection: f64 = phi
            .iter()
            .enumerate()
            .map(|(j, &f)| f64::from(f) * f64::from(class_vector(class, j)))
            .sum();
        assert!(
            projection.abs() > 1e-3,
            "the test's class vectors must move the logit (row {row}: {projection})"
        );
        let expected = linear + projection;
        assert!(
            (f64::from(logits[row]) - expected).abs() < 1e-4 * (1.0 + expected.abs()),
            "row {row}, class {class}: logit {} but linear {linear} + projection {projection}",
            logits[row]
        );
    }
}

#[test]
fn configs_written_before_the_projection_existed_load_without_it() {
    let read = read_without(
        &GanConfig::new(10).with_projection(Some(true)),
        "projection",
    );
    assert!(!read.projects());
    assert_eq!(read, GanConfig::new(10));
}

/// `config` as a config written before `field` existed reads: its JSON without the field.
fn read_without(config: &GanConfig, field: &str) -> GanConfig {
    let mut written = serde_json::to_value(config).expect("json");
    written
        .as_object_mut()
        .expect("object")
        .remove(field)
        .expect("the field is written");
    serde_json::from_value(written).expect("an older config still reads")
}

#[test]
fn configs_written_before_the_auxiliary_classifier_existed_load_without_it() {
    let read = read_without(
        &GanConfig::new(10).with_auxiliary_classifier(Some(1.0)),
        "auxiliary_classifier",
    );
    assert_eq!(read, GanConfig::new(10));
}

#[test]
fn the_auxiliary_classifier_leaves_the_logit_alone_and_gives_one_logit_per_class() {
    let config = GanConfig::new(CLASSES)
        .with_width(WIDTH)
        .with_latent_dim(8)
        .with_auxiliary_classifier(Some(1.0));
    let classifying = crate::gan::tests::locked_init(&config).1;
    let plain = Discriminator {
        auxiliary: None,
        ..classifying.clone()
    };
    assert_same_logits(
        &classifying,
        &plain,
        "the real/generated logit is the recipe's",
    );
    let (images, _) = images_and_labels();
    assert!(plain.classify(images.clone()).is_none());
    let class_logits = classifying.classify(images).expect("a classifier");
    assert_eq!(class_logits.dims(), [3, CLASSES]);
    let class_logits = values(class_logits);
    assert!(
        class_logits.iter().all(|v| v.is_finite()) && class_logits.iter().any(|&v| v != 0.0),
        "{class_logits:?}"
    );
}

#[test]
fn weights_that_are_not_positive_are_refused_by_name() {
    type WithWeight = fn(GanConfig, Option<f32>) -> GanConfig;
    let options: [(&str, WithWeight); 2] = [
        ("auxiliary_classifier", GanConfig::with_auxiliary_classifier),
        (
            "unconditional_low_resolution",
            GanConfig::with_unconditional_low_resolution,
        ),
    ];
    for (field, with_weight) in options {
        for weight in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let error = with_weight(GanConfig::new(CLASSES), Some(weight))
                .validate()
                .expect_err("refused");
            assert!(error.to_string().contains(field), "{weight}: {error}");
        }
        assert!(
            with_weight(GanConfig::new(CLASSES), Some(0.5))
                .validate()
                .is_ok()
        );
    }
}

/// `discriminator` with every weight spectral normalization divides (the convolutions', the
/// label channel's linear layer's, the last layer's) multiplied by `factor`.
fn weights_scaled(mut discriminator: Discriminator<B>, factor: f32) -> Discriminator<B> {
    let scale = |weight: Param<Tensor<B, 4>>| weight.map(|w| w.mul_scalar(factor));
    discriminator.downsample = discriminator
        .downsample
        .into_iter()
        .map(|mut layer| {
            layer.weight = scale(layer.weight);
            layer
        })
        .collect();
    discriminator.label_projection.weight = discriminator
        .label_projection
        .weight
        .map(|w| w.mul_scalar(factor));
    discriminator.classifier.weight = discriminator
        .classifier
        .weight
        .map(|w| w.mul_scalar(factor));
    discriminator
}

#[test]
fn a_spectrally_normalized_discriminator_does_not_see_the_scale_of_its_weights() {
    let config = GanConfig::new(CLASSES)
        .with_width(WIDTH)
        .with_latent_dim(8)
        .with_spectral_norm(Some(true));
    let normalized = crate::gan::tests::locked_init(&config).1;
    assert!(normalized.is_spectrally_normalized());
    let (images, labels) = images_and_labels();
    let logits = |discriminator: &Discriminator<B>| {
        values(discriminator.forward(images.clone(), labels.clone(), None))
    };
    let scaled = logits(&weights_scaled(normalized.clone(), 10.0));
    let unscaled = logits(&normalized);
    for (row, (a, b)) in scaled.iter().zip(&unscaled).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "row {row}: {a} against {b}"
        );
    }
    // The same weights computed as they are: the scale shows, and the logits are other ones.
    let plain = Discriminator {
        spectral_norm: false,
        ..normalized.clone()
    };
    assert_ne!(logits(&plain), unscaled);
    assert_ne!(logits(&weights_scaled(plain.clone(), 10.0)), logits(&plain));
}

#[test]
fn configs_written_before_spectral_norm_existed_load_without_it() {
    let read = read_without(
        &GanConfig::new(10).with_spectral_norm(Some(true)),
        "spectral_norm",
    );
    assert!(!read.spectrally_normalized());
    assert_eq!(read, GanConfig::new(10));
}

#[test]
fn configs_written_before_the_unconditional_low_resolution_existed_load_without_it() {
    let read = read_without(
        &GanConfig::new(10).with_unconditional_low_resolution(Some(1.0)),
        "unconditional_low_resolution",
    );
    assert!(!read.shares_low_resolution());
    assert_eq!(read, GanConfig::new(10));
}

fn sharing_config() -> GanConfig {
    GanConfig::new(CLASSES)
        .with_width(WIDTH)
        .with_latent_dim(8)
        .with_unconditional_low_resolution(Some(1.0))
}

#[test]
fn the_half_resolution_image_is_the_same_for_every_label_and_the_full_one_is_not() {
    let device = Default::default();
    let generator = crate::gan::tests::locked_init(&sharing_config()).0;
    // Two different noise vectors.
    let noise_values: Vec<f32> = (0..16).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let noise = Tensor::<B, 1>::from_floats(noise_values.as_slice(), &device).reshape([2, 8]);
    let draw = |label: i64| {
        let labels = Tensor::<B, 1, Int>::from_ints([label, label], &device);
        let (image, low) = generator.forward_with_low_resolution(noise.clone(), labels.clone());
        let low = low.expect("a half-resolution image");
        assert_eq!(image.dims(), [2, 1, 28, 28]);
        assert_eq!(low.dims(), [2, 1, 14, 14]);
        assert_eq!(
            values(generator.forward(noise.clone(), labels)),
            values(image.clone()),
            "forward draws the same image"
        );
        (values(image), values(low))
    };
    let (image_0, low_0) = draw(0);
    let (image_2, low_2) = draw(2);
    assert_eq!(low_0, low_2, "the lower stages never see the label");
    assert_ne!(image_0, image_2, "the last stage draws the class");
    assert_ne!(low_0[..196], low_0[196..], "the noise still matters");
    // The recipe's generator has no half-resolution image.
    let recipe = crate::gan::tests::locked_init(
        &GanConfig::new(CLASSES).with_width(WIDTH).with_latent_dim(8),
    )
    .0;
    let noise = Tensor::<B, 2>::zeros([1, 8], &device);
    let labels = Tensor::<B, 1, Int>::from_ints([1], &device);
    assert!(
        recipe
            .forward_with_low_resolution(noise, labels)
            .1
            .is_none()
    );
}

#[test]
fn the_unconditional_logit_shares_the_lower_stages_and_leaves_the_conditional_one_alone() {
    let sharing = crate::gan::tests::locked_init(&sharing_config()).1;
    let (images, _) = images_and_labels();
    let half = burn::tensor::module::avg_pool2d(images, [2, 2], [2, 2], [0, 0], true, false);
    let unconditional = |discriminator: &Discriminator<B>| {
        values(
            discriminator
                .forward_low_resolution(half.clone(), None)
                .expect("an unconditional logit"),
        )
    };
    let logits = unconditional(&sharing);
    assert_eq!(logits.len(), 3, "one logit per image");
    // The conditional logit is the one a discriminator without the head gives.
    let without_head = Discriminator {
        low_resolution: None,
        ..sharing.clone()
    };
    assert_same_logits(
        &sharing,
        &without_head,
        "the conditional path is the recipe's",
    );
    assert!(
        without_head
            .forward_low_resolution(half.clone(), None)
            .is_none()
    );
    // Shared: the stages after the first feed it, the first (full resolution) does not.
    let scaled_stage = |stage: usize| {
        let mut changed = sharing.clone();
        changed.downsample[stage].weight = changed.downsample[stage]
            .weight
            .clone()
            .map(|w| w.mul_scalar(3.0));
        unconditional(&changed)
    };
    assert_eq!(
        scaled_stage(0),
        logits,
        "the full-resolution stage is not on its path"
    );
    assert_ne!(
        scaled_stage(1),
        logits,
        "the half-resolution stage is shared"
    );
}
