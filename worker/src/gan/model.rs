//! The standard class-conditional DCGAN ("cdcgan-28", BENCHMARK.md) and its 32×32 RGB sibling.
//!
//! Conditioning follows the talk's recipe in both networks: label → Embedding(C, 50) →
//! Linear(50, feature-map size) with linear activation → one extra channel concatenated to the
//! feature map (generator) or to the image (discriminator). The discriminator may add a
//! projection term on top (`GanConfig::projection`, off in the recipe).

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, tanh};

use super::kernels::{GeneratorKernels, output_layer, upsample};
use crate::data::ImageShape;
use crate::error::{Error, Result};

/// DCGAN's initialization (Radford et al. 2016): every weight from N(0, 0.02).
const DCGAN_INIT: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.02,
};

/// Size of the label embedding in both networks.
pub const LABEL_EMBEDDING: usize = 50;
/// Slope of every LeakyReLU.
const LEAKY_SLOPE: f64 = 0.2;

/// The architecture of one cDCGAN: what a checkpoint must match to be loaded.
#[derive(Config, Debug, PartialEq)]
pub struct GanConfig {
    /// Number of classes C.
    pub num_classes: usize,
    /// Channels of the images: 1 (gray) or 3 (RGB).
    #[config(default = 1)]
    pub channels: usize,
    /// Side of the square images: 28 (two up/down-sampling stages from 7) or 32 (three from 4).
    #[config(default = 28)]
    pub image_size: usize,
    /// Feature width W: 128 is the standard, 64 the small preset for CPU runs.
    #[config(default = 128)]
    pub width: usize,
    /// Size of the noise vector z.
    #[config(default = 100)]
    pub latent_dim: usize,
    /// Dropout before the discriminator's last layer.
    #[config(default = 0.4)]
    pub dropout: f64,
    /// Add a projection term to the discriminator's logit (Miyato & Koyama, "cGANs with
    /// Projection Discriminator", 2018): ⟨embed(y), φ(x)⟩, with φ(x) the features the last
    /// linear layer reads. The label channel stays; the projection makes the logit a per-class
    /// linear function of the features, so the discriminator must judge *which class* an
    /// image looks like, not only whether it looks real. Zero-initialized: training starts
    /// from the recipe's discriminator. `Some(true)` adds it; `None`, the recipe, is also how
    /// configs written before the option existed read (burn's `Config` has no serde defaults,
    /// and serde reads a missing `Option` as `None`). Ask [`GanConfig::projects`].
    pub projection: Option<bool>,
    /// Train an auxiliary classifier beside the discriminator, with this weight on its terms
    /// (AC-GAN, Odena et al., "Conditional Image Synthesis with Auxiliary Classifier GANs",
    /// 2017): a network of the discriminator's shape that sees the image *without* the label
    /// channel and says which class it is. It learns from the real images (cross-entropy
    /// against their labels, added to the discriminator's loss), and the generator is asked
    /// that its images of class y be classified as y (added to the generator's loss), so a
    /// rare class's images must look like that class and not like a neighbouring majority
    /// class. The classifier learns from real images only: on long-tailed data the rare
    /// classes' generated images are the worst, and a classifier taught by them would learn
    /// their mistakes. None, the recipe, is also how configs written before the option read.
    pub auxiliary_classifier: Option<f32>,
    /// Divide every weight of the discriminator (its convolutions and linear layers; not the
    /// projection's class vectors, which start at zero, nor the auxiliary classifier) by its
    /// largest singular value at every forward pass (`super::spectral`). The weights are the
    /// same parameters, so checkpoints have the same shapes; `Some(true)` normalizes, `None` is
    /// the recipe and how configs written before the option read. Ask
    /// [`GanConfig::spectrally_normalized`].
    pub spectral_norm: Option<bool>,
    /// Share what the common classes teach with the rare ones (UTLO: Khorram et al., "Taming
    /// the Tail in Class-Conditional GANs: Knowledge Sharing via Unconditional Training at
    /// Lower Resolutions", CVPR 2024), with this weight on the unconditional terms. The
    /// generator's stages below the full resolution see no label — the label channel joins
    /// the features before the last upsampling instead of after the noise projection — and
    /// draw a half-resolution image too (a 3×3 convolution to the image's channels), which
    /// the discriminator's lower stages judge *without* the label, against the real images
    /// average-pooled to that size (a 1×1 convolution brings the image to the features' width,
    /// then the discriminator's stages after the first, then a logit of its own). The coarse
    /// shapes are then learnt from every image, 4000 t-shirts and 40 boots alike; only the
    /// last stage draws what a class is. The full-resolution image keeps the conditional
    /// objective. Checkpoints have other shapes (the generator's label channel, the two new
    /// convolutions and logit), so it is part of the architecture; None is the recipe and how
    /// configs written before the option read.
    pub unconditional_low_resolution: Option<f32>,
}

impl GanConfig {
    /// Checks the fields and returns the number of 2× resampling stages.
    pub fn validate(&self) -> Result<usize> {
        if self.num_classes == 0 || self.num_classes > usize::from(u16::MAX) {
            return Err(Error::config(
                "num_classes",
                format!("{} is not in 1..=65535", self.num_classes),
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::config(
                "channels",
                format!("{} is neither 1 nor 3", self.channels),
            ));
        }
        if self.width == 0 || self.latent_dim == 0 {
            return Err(Error::config(
                "width",
                "width and latent_dim must be positive",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        Error::check_weight("auxiliary_classifier", self.auxiliary_classifier)?;
        Error::check_weight(
            "unconditional_low_resolution",
            self.unconditional_low_resolution,
        )?;
        match self.image_size {
            28 => Ok(2),
            32 => Ok(3),
            other => Err(Error::config(
                "image_size",
                format!("{other} is not 28 or 32"),
            )),
        }
    }

    /// Whether the discriminator has the projection term.
    pub fn projects(&self) -> bool {
        self.projection == Some(true)
    }

    /// Whether the discriminator's weights are spectrally normalized.
    pub fn spectrally_normalized(&self) -> bool {
        self.spectral_norm == Some(true)
    }

    /// Whether the lower-resolution stages train unconditionally (UTLO).
    pub fn shares_low_resolution(&self) -> bool {
        self.unconditional_low_resolution.is_some()
    }

    /// Side of the half-resolution images the unconditional objective judges.
    pub fn low_resolution_size(&self) -> usize {
        self.image_size / 2
    }

    /// Side of the first (generator) / last (discriminator) feature map.
    pub fn base_size(&self) -> usize {
        match self.image_size {
            32 => 4,
            _ => 7,
        }
    }

    pub fn image_shape(&self) -> ImageShape {
        ImageShape {
            channels: self.channels,
            height: self.image_size,
            width: self.image_size,
        }
    }

    /// Builds both networks on `device`; the generator computes its layers as this process
    /// chose (`backend::select_generator_kernels`; the backend's defaults unless chosen).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<(Generator<B>, Discriminator<B>)> {
        let stages = self.validate()?;
        Ok((
            self.init_generator(stages, device),
            self.init_discriminator(stages, device),
        ))
    }

    fn init_generator<B: Backend>(&self, stages: usize, device: &B::Device) -> Generator<B> {
        let base = self.base_size();
        let w = self.width;
        let sharing = self.shares_low_resolution();
        // The label channel joins the noise's features (the recipe) or, sharing the lower
        // stages, the last stage's input.
        let (label_stage, label_side) = match sharing {
            true => (stages - 1, self.low_resolution_size()),
            false => (0, base),
        };
        let upsample = (0..stages)
            .map(|stage| {
                let inputs = if stage == label_stage { w + 1 } else { w };
                ConvTranspose2dConfig::new([inputs, w], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .with_initializer(DCGAN_INIT)
                    .init(device)
            })
            .collect();
        Generator {
            label_embedding: EmbeddingConfig::new(self.num_classes, LABEL_EMBEDDING).init(device),
            label_projection: LinearConfig::new(LABEL_EMBEDDING, label_side * label_side)
                .with_initializer(DCGAN_INIT)
                .init(device),
            noise_projection: LinearConfig::new(self.latent_dim, w * base * base)
                .with_initializer(DCGAN_INIT)
                .init(device),
            upsample,
            output: Conv2dConfig::new([w, self.channels], [7, 7])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .with_initializer(DCGAN_INIT)
                .init(device),
            low_resolution_output: sharing.then(|| {
                Conv2dConfig::new([w, self.channels], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_initializer(DCGAN_INIT)
                    .init(device)
            }),
            width: w,
            base_size: base,
            kernels: crate::backend::selected_generator_kernels(),
        }
    }

    /// The discriminator's stride-2 convolutions, from `input_channels` to W channels at the
    /// base size.
    fn downsample<B: Backend>(
        &self,
        stages: usize,
        input_channels: usize,
        device: &B::Device,
    ) -> Vec<Conv2d<B>> {
        let w = self.width;
        (0..stages)
            .map(|stage| {
                let inputs = if stage == 0 { input_channels } else { w };
                Conv2dConfig::new([inputs, w], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_initializer(DCGAN_INIT)
                    .init(device)
            })
            .collect()
    }

    fn init_discriminator<B: Backend>(
        &self,
        stages: usize,
        device: &B::Device,
    ) -> Discriminator<B> {
        let base = self.base_size();
        let w = self.width;
        // The image and the label channel.
        let downsample = self.downsample(stages, self.channels + 1, device);
        Discriminator {
            label_embedding: EmbeddingConfig::new(self.num_classes, LABEL_EMBEDDING).init(device),
            label_projection: LinearConfig::new(LABEL_EMBEDDING, self.image_size * self.image_size)
                .with_initializer(DCGAN_INIT)
                .init(device),
            downsample,
            classifier: LinearConfig::new(w * base * base, 1)
                .with_initializer(DCGAN_INIT)
                .init(device),
            class_projection: self.projects().then(|| {
                EmbeddingConfig::new(self.num_classes, w * base * base)
                    .with_initializer(Initializer::Zeros)
                    .init(device)
            }),
            auxiliary: self.auxiliary_classifier.map(|_| AuxiliaryClassifier {
                // The image alone: a label channel would tell it the answer.
                downsample: self.downsample(stages, self.channels, device),
                output: LinearConfig::new(w * base * base, self.num_classes)
                    .with_initializer(DCGAN_INIT)
                    .init(device),
            }),
            low_resolution: self.shares_low_resolution().then(|| LowResolutionHead {
                input: Conv2dConfig::new([self.channels, w], [1, 1])
                    .with_initializer(DCGAN_INIT)
                    .init(device),
                classifier: LinearConfig::new(w * base * base, 1)
                    .with_initializer(DCGAN_INIT)
                    .init(device),
            }),
            image_size: self.image_size,
            spectral_norm: self.spectrally_normalized(),
        }
    }
}

/// Generator: (noise, label) → image in [-1, 1].
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    label_embedding: Embedding<B>,
    label_projection: Linear<B>,
    noise_projection: Linear<B>,
    upsample: Vec<ConvTranspose2d<B>>,
    output: Conv2d<B>,
    /// The half-resolution image's layer ([`GanConfig::unconditional_low_resolution`]); none
    /// in the recipe.
    low_resolution_output: Option<Conv2d<B>>,
    width: usize,
    base_size: usize,
    /// How the layers are computed: not part of the model (same weights, same numbers up to
    /// rounding), so not saved; a process chooses it.
    kernels: GeneratorKernels,
}

impl<B: Backend> Generator<B> {
    /// Computes the layers by `kernels` from now on.
    pub fn set_kernels(&mut self, kernels: GeneratorKernels) {
        self.kernels = kernels;
    }

    pub fn kernels(&self) -> GeneratorKernels {
        self.kernels
    }

    /// `noise`: `[batch, latent]`, `labels`: `[batch]` → images `[batch, channels, size, size]`.
    pub fn forward(&self, noise: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.forward_at(noise, labels, false).0
    }

    /// [`Generator::forward`], and with [`GanConfig::unconditional_low_resolution`] the
    /// half-resolution image drawn from the same noise by the unconditional stages,
    /// `[batch, channels, size / 2, size / 2]`; none in the recipe.
    pub fn forward_with_low_resolution(
        &self,
        noise: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        self.forward_at(noise, labels, true)
    }

    fn forward_at(
        &self,
        noise: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        low_resolution: bool,
    ) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        let [batch, _] = noise.dims();
        let base = self.base_size;
        // [batch, width * base * base] → [batch, width, base, base]
        let mut x = leaky_relu(self.noise_projection.forward(noise), LEAKY_SLOPE)
            .reshape([batch, self.width, base, base]);
        // The stage whose input takes the label channel: the first in the recipe, the last
        // when the lower stages are shared across classes.
        let label_stage = match self.low_resolution_output {
            Some(_) => self.upsample.len() - 1,
            None => 0,
        };
        let (unconditional, conditional) = self.upsample.split_at(label_stage);
        for layer in unconditional {
            // The spatial size doubles.
            x = leaky_relu(upsample(layer, x, self.kernels.upsampling), LEAKY_SLOPE);
        }
        let low_resolution_image = match (&self.low_resolution_output, low_resolution) {
            (Some(output), true) => Some(tanh(output.forward(x.clone()))),
            _ => None,
        };
        let [_, _, side, _] = x.dims();
        let label_map = label_channel(&self.label_embedding, &self.label_projection, labels, side);
        // [batch, width + 1, side, side]
        x = Tensor::cat(vec![x, label_map], 1);
        for layer in conditional {
            x = leaky_relu(upsample(layer, x, self.kernels.upsampling), LEAKY_SLOPE);
        }
        let image = tanh(output_layer(&self.output, x, self.kernels.output_layer));
        (image, low_resolution_image)
    }
}

/// Discriminator: (image, label) → one logit per image (real vs generated).
#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    label_embedding: Embedding<B>,
    label_projection: Linear<B>,
    downsample: Vec<Conv2d<B>>,
    classifier: Linear<B>,
    /// Per-class vectors of the projection term, `[classes, features]`; none in the recipe.
    class_projection: Option<Embedding<B>>,
    /// The auxiliary classifier ([`GanConfig::auxiliary_classifier`]); none in the recipe. Its
    /// weights are the discriminator's: trained by its optimizer, averaged with its gradients,
    /// saved in its blob.
    auxiliary: Option<AuxiliaryClassifier<B>>,
    /// The unconditional judge of half-resolution images
    /// ([`GanConfig::unconditional_low_resolution`]); none in the recipe. Its layers are the
    /// discriminator's: trained by its optimizer, averaged with its gradients, saved in its
    /// blob.
    low_resolution: Option<LowResolutionHead<B>>,
    image_size: usize,
    /// Whether every layer computes with its weight spectrally normalized
    /// ([`GanConfig::spectral_norm`]).
    spectral_norm: bool,
}

impl<B: Backend> Discriminator<B> {
    /// `images`: `[batch, channels, size, size]`, `labels`: `[batch]`, `dropout_keep`: an optional
    /// `[batch, features]` mask already scaled by 1/(1-p) (inverted dropout), drawn by the caller
    /// from a deterministic stream. Returns logits `[batch, 1]`.
    pub fn forward(
        &self,
        images: Tensor<B, 4>,
        labels: Tensor<B, 1, Int>,
        dropout_keep: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2> {
        let features = self.features(images, labels.clone(), dropout_keep);
        self.head(features, labels)
    }

    /// φ(x): what the last layer (and the projection term) reads, `[batch, features]`, after
    /// dropout.
    fn features(
        &self,
        images: Tensor<B, 4>,
        labels: Tensor<B, 1, Int>,
        dropout_keep: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2> {
        let [batch, _, _, _] = images.dims();
        let label_map = label_channel(
            &self.label_embedding,
            &self.linear(&self.label_projection),
            labels,
            self.image_size,
        );
        // [batch, channels + 1, size, size]
        let mut x = Tensor::cat(vec![images, label_map], 1);
        for layer in &self.downsample {
            x = leaky_relu(self.conv(layer).forward(x), LEAKY_SLOPE); // spatial size halves
        }
        // [batch, width, base, base] → [batch, width * base * base]
        let features = x.reshape([batch as i32, -1]);
        match dropout_keep {
            Some(keep) => features * keep,
            None => features,
        }
    }

    /// The logit from φ(x): the linear layer, plus ⟨class vector of y, φ(x)⟩ with a projection.
    fn head(&self, features: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let classifier = self.linear(&self.classifier);
        match &self.class_projection {
            None => classifier.forward(features),
            // The class vectors are not normalized, spectral norm or not: they start at zero
            // (σ = 0, nothing to divide by) so that training starts from the recipe's logit.
            Some(class_vectors) => {
                let [batch] = labels.dims();
                // [batch] → [batch, 1, features] → [batch, features]
                let class_vector = class_vectors
                    .forward(labels.reshape([batch, 1]))
                    .reshape([batch as i32, -1]);
                let projection = (features.clone() * class_vector).sum_dim(1);
                classifier.forward(features) + projection
            }
        }
    }

    /// `layer` as this discriminator computes it: spectrally normalized or as it is.
    fn conv(&self, layer: &Conv2d<B>) -> Conv2d<B> {
        match self.spectral_norm {
            true => super::spectral::conv(layer),
            false => layer.clone(),
        }
    }

    /// [`Discriminator::conv`] for a linear layer.
    fn linear(&self, layer: &Linear<B>) -> Linear<B> {
        match self.spectral_norm {
            true => super::spectral::linear(layer),
            false => layer.clone(),
        }
    }

    /// Whether the weights are spectrally normalized ([`GanConfig::spectral_norm`]).
    pub fn is_spectrally_normalized(&self) -> bool {
        self.spectral_norm
    }

    /// Class logits `[batch, classes]` of the auxiliary classifier for `images`, which it sees
    /// without their labels; none when the model has no auxiliary classifier.
    pub fn classify(&self, images: Tensor<B, 4>) -> Option<Tensor<B, 2>> {
        let auxiliary = self.auxiliary.as_ref()?;
        let [batch, _, _, _] = images.dims();
        let mut x = images;
        for layer in &auxiliary.downsample {
            x = leaky_relu(layer.forward(x), LEAKY_SLOPE);
        }
        Some(auxiliary.output.forward(x.reshape([batch as i32, -1])))
    }

    /// The unconditional logit `[batch, 1]` of half-resolution `images`
    /// (`[batch, channels, size / 2, size / 2]`), which it sees without labels: the 1×1 input
    /// convolution, the discriminator's stages after the first (shared with the conditional
    /// path), dropout as in [`Discriminator::forward`], and the head's own linear layer. None
    /// without [`GanConfig::unconditional_low_resolution`].
    pub fn forward_low_resolution(
        &self,
        images: Tensor<B, 4>,
        dropout_keep: Option<Tensor<B, 2>>,
    ) -> Option<Tensor<B, 2>> {
        let head = self.low_resolution.as_ref()?;
        let [batch, _, _, _] = images.dims();
        let mut x = leaky_relu(self.conv(&head.input).forward(images), LEAKY_SLOPE);
        for layer in self.downsample.iter().skip(1) {
            x = leaky_relu(self.conv(layer).forward(x), LEAKY_SLOPE); // spatial size halves
        }
        let features = x.reshape([batch as i32, -1]);
        let features = match dropout_keep {
            Some(keep) => features * keep,
            None => features,
        };
        Some(self.linear(&head.classifier).forward(features))
    }

    /// Whether the logit has the projection term ([`GanConfig::projection`]).
    pub fn has_projection(&self) -> bool {
        self.class_projection.is_some()
    }

    /// Length of the feature vector dropout applies to.
    pub fn feature_len(&self) -> usize {
        self.classifier.weight.dims()[0]
    }
}

/// AC-GAN's auxiliary classifier: the discriminator's convolutions without the label channel,
/// then one linear layer to a logit per class.
#[derive(Module, Debug)]
pub struct AuxiliaryClassifier<B: Backend> {
    downsample: Vec<Conv2d<B>>,
    output: Linear<B>,
}

/// UTLO's unconditional path into the discriminator's lower stages: half-resolution images
/// in, one logit out.
#[derive(Module, Debug)]
pub struct LowResolutionHead<B: Backend> {
    /// 1×1 convolution from the image's channels to the features' width ("fromRGB").
    input: Conv2d<B>,
    classifier: Linear<B>,
}

/// The label as one extra `[batch, 1, side, side]` channel: embedding, then a linear layer.
fn label_channel<B: Backend>(
    embedding: &Embedding<B>,
    projection: &Linear<B>,
    labels: Tensor<B, 1, Int>,
    side: usize,
) -> Tensor<B, 4> {
    let [batch] = labels.dims();
    // [batch] → [batch, 1] → [batch, 1, 50] → [batch, 50]
    let embedded = embedding
        .forward(labels.reshape([batch, 1]))
        .reshape([batch, LABEL_EMBEDDING]);
    // [batch, side * side] → [batch, 1, side, side]
    projection.forward(embedded).reshape([batch, 1, side, side])
}

#[cfg(test)]
mod tests;
