use super::*;
use crate::backend::TrainBackend;
use crate::data::ImageShape;
use crate::eval::metrics::ConfusionMatrix;
use crate::gan::sample::floats;

/// Class 0: bright left half; class 1: bright top half; a little per-image variation.
fn two_patterns(per_class: usize) -> ImageDataset {
    two_patterns_labelled(per_class, false)
}

/// [`two_patterns`], with the two labels exchanged when `swapped`.
fn two_patterns_labelled(per_class: usize, swapped: bool) -> ImageDataset {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..2 * per_class {
        let class = i % 2;
        for y in 0..28 {
            for x in 0..28 {
                let on = if class == 0 { x < 14 } else { y < 14 };
                pixels.push(if on {
                    200 + (i % 7) as u8
                } else {
                    20 + (i % 5) as u8
                });
            }
        }
        labels.push((class ^ usize::from(swapped)) as u16);
    }
    let shape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    ImageDataset::new(shape, pixels, labels, vec!["left".into(), "top".into()]).expect("dataset")
}

/// The logits of the first `count` images of `data`.
fn first_logits(
    model: &Classifier<crate::backend::ComputeBackend>,
    data: &ImageDataset,
    count: usize,
) -> Vec<f32> {
    let (values, _) = data.normalized_batch(&(0..count).collect::<Vec<_>>());
    let device = Default::default();
    model
        .forward(images_tensor::<crate::backend::ComputeBackend>(
            data, values, count, &device,
        ))
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32")
}

fn recalls(weights: Option<&[f32]>) -> Vec<f64> {
    let data = two_patterns(32);
    let config = ClassifierConfig::new(2).with_width(4);
    let training = ClassifierTraining::new().with_epochs(3).with_batch_size(16);
    let device = Default::default();
    let model = train_classifier::<TrainBackend>(&data, &config, &training, weights, &device)
        .expect("trains");
    let predicted = predict(&model, &data, &device);
    ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
        .expect("matrix")
        .recalls()
}

#[test]
fn learns_two_patterns() {
    assert_eq!(recalls(None), vec![1.0, 1.0]);
}

#[test]
fn mean_and_label_probabilities_are_the_softmax_averaged_and_picked_per_image() {
    let data = two_patterns(4);
    let config = ClassifierConfig::new(2).with_width(4);
    let training = ClassifierTraining::new().with_epochs(1).with_batch_size(8);
    let device = Default::default();
    let model =
        train_classifier::<TrainBackend>(&data, &config, &training, None, &device).expect("trains");
    let scored = predict_scored(&model, &data, &device);
    assert_eq!(scored.predicted, predict(&model, &data, &device));
    // By hand: softmax of each image's two logits, averaged.
    let (values, _) = data.normalized_batch(&(0..data.len()).collect::<Vec<_>>());
    let logits = model
        .forward(images_tensor::<crate::backend::ComputeBackend>(
            &data,
            values,
            data.len(),
            &device,
        ))
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("f64");
    let mut expected = [0.0f64; 2];
    for ((pair, &label), &got) in logits
        .chunks(2)
        .zip(data.labels())
        .zip(&scored.label_probability)
    {
        let top = pair[0].max(pair[1]);
        let (a, b) = ((pair[0] - top).exp(), (pair[1] - top).exp());
        expected[0] += a / (a + b) / data.len() as f64;
        expected[1] += b / (a + b) / data.len() as f64;
        let own = [a, b][usize::from(label)] / (a + b);
        assert!((f64::from(got) - own).abs() < 1e-5, "{got} vs {own}");
    }
    assert_eq!(scored.label_probability.len(), data.len());
    for (got, want) in scored.mean_probability.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    let total: f64 = scored.mean_probability.iter().sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
}

#[test]
fn class_weights_steer_the_loss() {
    // With class 0 weighted 0, nothing pushes the model towards class 0.
    let ignored = recalls(Some(&[0.0, 1.0]));
    assert_eq!(ignored[1], 1.0);
    assert!(ignored[0] < 0.5, "{ignored:?}");
}

#[test]
fn same_seed_same_predictions_and_bad_weights_refused() {
    let data = two_patterns(8);
    let config = ClassifierConfig::new(2).with_width(4);
    let training = ClassifierTraining::new().with_epochs(1).with_batch_size(8);
    let device = Default::default();
    let a =
        train_classifier::<TrainBackend>(&data, &config, &training, None, &device).expect("trains");
    let b =
        train_classifier::<TrainBackend>(&data, &config, &training, None, &device).expect("trains");
    let logits = |m: &Classifier<_>| first_logits(m, &data, 3);
    assert_eq!(logits(&a), logits(&b));
    let constant = train_classifier::<TrainBackend>(
        &data,
        &config,
        &training
            .clone()
            .with_schedule(LearningRateSchedule::Constant),
        None,
        &device,
    )
    .expect("trains");
    assert_ne!(
        logits(&constant),
        logits(&a),
        "the schedule reaches the optimizer"
    );
    let Err(err) =
        train_classifier::<TrainBackend>(&data, &config, &training, Some(&[1.0]), &device)
    else {
        panic!("one weight for two classes must be refused");
    };
    assert!(err.to_string().contains("class_weights"), "{err}");
}

#[test]
fn phases_continue_one_run_and_each_phase_trains_on_its_own_set() {
    let data = two_patterns(32);
    let swapped = two_patterns_labelled(32, true);
    let config = ClassifierConfig::new(2).with_width(4);
    let training = ClassifierTraining::new().with_epochs(4).with_batch_size(16);
    let device = Default::default();
    let phase = |data, epochs| TrainingPhase {
        data,
        epochs,
        class_weights: None,
        frozen_features: false,
    };
    let logits = |m: &Classifier<_>| first_logits(m, &data, 4);
    let whole =
        train_classifier::<TrainBackend>(&data, &config, &training, None, &device).expect("trains");
    let split = train_classifier_in_phases::<TrainBackend>(
        &[phase(&data, 1), phase(&data, 3)],
        &config,
        &training,
        &device,
    )
    .expect("trains");
    assert_eq!(logits(&whole), logits(&split), "one set in two phases");
    // The last phase teaches the opposite labels for longer: the model ends with them.
    let turned = train_classifier_in_phases::<TrainBackend>(
        &[phase(&data, 1), phase(&swapped, 8)],
        &config,
        &training,
        &device,
    )
    .expect("trains");
    let predicted = predict(&turned, &data, &device);
    let recalls = ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
        .expect("matrix")
        .recalls();
    assert!(recalls.iter().all(|&r| r < 0.5), "{recalls:?}");
    let Err(err) = train_classifier_in_phases::<TrainBackend>(
        &[
            phase(&data, 1),
            TrainingPhase {
                class_weights: Some(&[1.0]),
                ..phase(&swapped, 1)
            },
        ],
        &config,
        &training,
        &device,
    ) else {
        panic!("one weight for two classes must be refused");
    };
    assert!(err.to_string().contains("phase 1"), "{err}");
}

/// Both convolutions' weights and biases, as numbers.
fn conv_parameters(model: &Classifier<crate::backend::ComputeBackend>) -> Vec<f32> {
    let mut tensors = vec![model.conv1.weight.val(), model.conv2.weight.val()];
    tensors.extend(model.conv1.bias.iter().chain(&model.conv2.bias).map(|b| {
        let n = b.val().dims()[0];
        b.val().reshape([n, 1, 1, 1])
    }));
    tensors
        .into_iter()
        .flat_map(|t| {
            t.into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32")
        })
        .collect()
}

#[test]
fn a_phase_with_frozen_features_trains_the_head_alone() {
    let data = two_patterns(32);
    let swapped = two_patterns_labelled(32, true);
    let config = ClassifierConfig::new(2).with_width(4);
    let training = ClassifierTraining::new().with_batch_size(16);
    let device = Default::default();
    let phase = |data, epochs, frozen_features| TrainingPhase {
        data,
        epochs,
        class_weights: None,
        frozen_features,
    };
    let run = |phases: &[TrainingPhase<'_>]| {
        train_classifier_in_phases::<TrainBackend>(phases, &config, &training, &device)
    };
    // The same first phase, then 8 frozen epochs of either labelling: the convolutions end
    // where the first phase left them whatever the second taught, the head follows it.
    let kept = run(&[phase(&data, 1, false), phase(&data, 8, true)]).expect("trains");
    let turned = run(&[phase(&data, 1, false), phase(&swapped, 8, true)]).expect("trains");
    assert_eq!(conv_parameters(&kept), conv_parameters(&turned));
    let recalls = |model: &Classifier<_>| {
        let predicted = predict(model, &data, &device);
        ConfusionMatrix::from_labels(data.labels(), &predicted, 2)
            .expect("matrix")
            .recalls()
    };
    assert!(
        recalls(&turned).iter().all(|&r| r < 0.5),
        "{:?}",
        recalls(&turned)
    );
    assert!(
        recalls(&kept).iter().all(|&r| r > 0.5),
        "{:?}",
        recalls(&kept)
    );
    // Unfrozen, the second phase moves the convolutions too.
    let retrained = run(&[phase(&data, 1, false), phase(&swapped, 8, false)]).expect("trains");
    assert_ne!(conv_parameters(&retrained), conv_parameters(&turned));
    // Features frozen once stay frozen.
    let Err(err) = run(&[phase(&data, 1, true), phase(&data, 1, false)]) else {
        panic!("a phase that trains the convolutions after a frozen one must be refused");
    };
    assert!(
        err.to_string().contains("phase 1") && err.to_string().contains("phase 0"),
        "{err}"
    );
}

#[test]
fn augmentation_reaches_training_repeats_for_a_seed_and_is_checked_against_the_images() {
    let data = two_patterns(8);
    let config = ClassifierConfig::new(2).with_width(4);
    let plain = ClassifierTraining::new().with_epochs(1).with_batch_size(8);
    let augmented = plain
        .clone()
        .with_augment_shift(2)
        .with_augment_flip_probability(0.5);
    let device = Default::default();
    let train = |training: &ClassifierTraining| {
        let model = train_classifier::<TrainBackend>(&data, &config, training, None, &device)
            .expect("trains");
        first_logits(&model, &data, 3)
    };
    let once = train(&augmented);
    assert_eq!(once, train(&augmented), "the draws come from the seed");
    assert_ne!(once, train(&plain), "the augmentation reaches the batches");
    let Err(err) = train_classifier::<TrainBackend>(
        &data,
        &config,
        &plain.clone().with_augment_shift(14),
        None,
        &device,
    ) else {
        panic!("a 14-pixel shift of a 28×28 image must be refused");
    };
    assert!(err.to_string().contains("augment_shift"), "{err}");
}

/// The forward pass as the architecture is written: ReLU, then pooling.
fn forward_relu_then_pool<B: Backend>(model: &Classifier<B>, images: Tensor<B, 4>) -> Tensor<B, 2> {
    let x = model.pool.forward(relu(model.conv1.forward(images)));
    let x = model.pool.forward(relu(model.conv2.forward(x)));
    let x: Tensor<B, 2> = x.flatten(1, 3);
    model.output.forward(relu(model.hidden.forward(x)))
}

#[test]
fn pooling_before_the_relu_gives_the_same_logits_and_gradients_bit_for_bit() {
    let device = Default::default();
    let config = ClassifierConfig::new(3).with_width(4);
    // Every draw from burn's process-global RNG under the init lock, as `seeded_init` asks:
    // a draw outside it would change the initial weights of a test training beside this one.
    // Normal inputs: many windows whose maximum is negative, where only the order differs.
    let (model, images, weighting) =
        crate::gan::train::seeded_init::<TrainBackend, _>(&device, 7, || {
            let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
            (
                config.init::<TrainBackend>(&device).map(force_init),
                Tensor::<TrainBackend, 4>::random([6, 1, 28, 28], normal, &device),
                Tensor::<TrainBackend, 2>::random([6, 3], normal, &device),
            )
        });
    let model = model.expect("model");
    let _section = crate::autodiff::section();
    let numbers = |logits: Tensor<TrainBackend, 2>| {
        let grads = (logits.clone() * weighting.clone()).sum().backward();
        let mut values = floats(logits);
        for grad in [
            model.conv1.weight.grad(&grads),
            model.conv2.weight.grad(&grads),
        ] {
            values.extend(floats(grad.expect("a convolution has a gradient")));
        }
        values
    };
    let ours = numbers(model.forward(images.clone()));
    let textbook = numbers(forward_relu_then_pool(&model, images));
    assert!(ours.iter().any(|v| *v != 0.0), "gradients must flow");
    let differing = ours
        .iter()
        .zip(&textbook)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differing, 0, "{differing} of {} numbers differ", ours.len());
}
