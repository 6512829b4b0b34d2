//! How the generator's layers are computed: choices of kernels, not of model. Each way gives
//! the same numbers up to float rounding from the same weights, so the weights, their names and
//! the checkpoints do not depend on the choice, and a process makes it for every generator it
//! builds (`backend::select_generator_kernels`; `worker join --upsampling … --output-layer …`).
//! What is fastest depends on the backend's kernels, hence [`GeneratorKernels::for_backend`].
//!
//! **Up-sampling** (kernel 4, stride 2, padding 1). [`Upsampling::Transposed`] calls burn's
//! `conv_transpose2d`. [`Upsampling::Phases`] computes the same layer as one stride-1
//! convolution ("sub-pixel" decomposition): every output pixel of a stride-2 transposed
//! convolution with a 4×4 kernel receives exactly 2×2 of the kernel's taps, and which 2×2
//! depends only on the pixel's phase (its row and column parity). So one convolution with 2×2
//! kernels and four times the output channels, one group of channels per phase, computes all
//! four phases over the input, and interleaving them gives the output. It does the same
//! multiplications (plus one padded row and column per phase), and it runs on a backend's
//! ordinary convolution instead of its transposed one — on burn 0.21's GPU backend the
//! transposed convolution has only direct and col2im kernels, while the ordinary one has
//! implicit-GEMM kernels (issue 9's hypothesis for the GPU step time; `bench/gpu.sh` measures
//! both).
//!
//! The derivation, per axis: output row `o` gets input row `i` through kernel tap `t` when
//! `o = 2i − 1 + t`. For an even row `o = 2m` that is `t = 1` (from `i = m`) and `t = 3`
//! (`i = m − 1`); for an odd row `o = 2m + 1`, `t = 0` (`i = m + 1`) and `t = 2` (`i = m`).
//! With the input padded by one row each side, the 2-tap window starting at padded row `j`
//! holds input rows `j − 1` and `j`: phase `a` (the row parity) reads the window at `j = m + a`
//! and its tap `u` (0 or 1) is kernel tap `t = 3 − a − 2u`, which is the flipped kernel's row
//! `a + 2u`. Columns alike.
//!
//! **The output layer** (W channels → the image's, 7×7, stride 1, padding 3).
//! [`OutputLayer::Convolution`] calls burn's `conv2d`. [`OutputLayer::Transposed`] computes it
//! as the stride-1 transposed convolution with the kernel flipped and its two channel axes
//! swapped, padding `k − 1 − p`: the same sums. What differs is the backward pass: a
//! convolution's input gradient is a transposed convolution and vice versa, and on the CPU
//! backend (burn-flex 0.21) a transposed convolution costs a matrix product plus a scalar
//! col2im over `out channels × k² × input pixels`. For this layer's input gradient that is
//! W × 49 × 784 adds an image (157 M a batch of 64 at W = 64), one batch element after
//! another; computed forward as a transposed convolution instead, the col2im is over its one
//! output channel (49 × 784 an image) and the input gradient becomes an ordinary convolution.

use std::fmt;
use std::str::FromStr;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// Names, parsing and display for a choice among unit variants, each with its command-line name.
macro_rules! named_choice {
    ($choice:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $choice {
            pub fn name(self) -> &'static str {
                match self {
                    $($choice::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $choice {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $choice {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($name => Ok($choice::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        $what,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

/// How the generator computes its up-sampling layers (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsampling {
    /// burn's transposed convolution.
    Transposed,
    /// One stride-1 convolution computing the four output phases, then interleaved.
    Phases,
}

named_choice!(Upsampling, "up-sampling", { Transposed => "transposed", Phases => "phases" });

/// How the generator computes its output layer (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayer {
    /// burn's convolution.
    Convolution,
    /// The same layer as a transposed convolution, whose input gradient is a convolution.
    Transposed,
}

named_choice!(OutputLayer, "output layer", {
    Convolution => "convolution",
    Transposed => "transposed",
});

/// Every choice of how the generator's layers are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorKernels {
    pub upsampling: Upsampling,
    pub output_layer: OutputLayer,
}

impl GeneratorKernels {
    /// The defaults for `backend` (`backend::BACKEND_NAME`). On the CPU backends, what was
    /// measured fastest on burn-flex (the README's Benchmarks): up-sampling transposed, output
    /// layer transposed. On the GPU, both as the plain layers until a GPU run has measured the
    /// alternatives (`bench/gpu.sh`): its transposed convolutions are the slow kind, so the
    /// output layer stays a convolution.
    pub fn for_backend(backend: &str) -> Self {
        GeneratorKernels {
            upsampling: Upsampling::Transposed,
            output_layer: if backend == "cuda" {
                OutputLayer::Convolution
            } else {
                OutputLayer::Transposed
            },
        }
    }
}

impl fmt::Display for GeneratorKernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "up-sampling {}, output layer {}",
            self.upsampling, self.output_layer
        )
    }
}

impl Default for GeneratorKernels {
    fn default() -> Self {
        GeneratorKernels::for_backend(crate::backend::BACKEND_NAME)
    }
}

/// The geometry [`Upsampling::Phases`] is derived for: the generator's only one.
const KERNEL: usize = 4;
const STRIDE: usize = 2;
const PADDING: usize = 1;

/// `layer` applied to `input`, computed by `method`. A layer the phases are not derived for
/// (the generator builds none) is computed as the transposed convolution it is, as the output
/// layer's transposed form falls back to the convolution.
pub fn upsample<B: Backend>(
    layer: &ConvTranspose2d<B>,
    input: Tensor<B, 4>,
    method: Upsampling,
) -> Tensor<B, 4> {
    match method {
        Upsampling::Phases if has_the_phases_geometry(layer) => upsample_by_phases(
            input,
            layer.weight.val(),
            layer.bias.as_ref().map(|bias| bias.val()),
        ),
        _ => layer.forward(input),
    }
}

/// Whether `layer` is the geometry the phase decomposition is derived for: kernel 4, stride 2,
/// padding 1, no output padding, dilation 1, one group.
fn has_the_phases_geometry<B: Backend>(layer: &ConvTranspose2d<B>) -> bool {
    layer.kernel_size == [KERNEL; 2]
        && layer.stride == [STRIDE; 2]
        && layer.padding == [PADDING; 2]
        && layer.padding_out == [0; 2]
        && layer.dilation == [1; 2]
        && layer.groups == 1
}

/// The transposed convolution (kernel 4, stride 2, padding 1) of `input` `[batch, in, h, w]`
/// with `weight` `[in, out, 4, 4]` as one convolution with `[4·out, in, 2, 2]` kernels.
fn upsample_by_phases<B: Backend>(
    input: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [batch, _, height, width] = input.dims();
    let [inputs, outputs, _, _] = weight.dims();
    // [in, out, 4, 4] → [out, in, 4, 4], kernel flipped: row r is tap 3 − r, and r = a + 2u.
    // Split each kernel axis into (u, a) and gather the phases first:
    // [out, in, u, a, v, b] → [a, b, out, in, u, v] → [4·out, in, 2, 2].
    let phase_kernels = weight
        .swap_dims(0, 1)
        .flip([2, 3])
        .reshape([outputs, inputs, 2, 2, 2, 2])
        .permute([3, 5, 0, 1, 2, 4])
        .reshape([4 * outputs, inputs, 2, 2]);
    let phase_bias = bias.map(|bias| Tensor::cat(vec![bias; 4], 0));
    // Input padded by one each side: [batch, 4·out, h + 1, w + 1], windows j = 0..=h.
    let windows = conv2d(
        input,
        phase_kernels,
        phase_bias,
        ConvOptions::new([1, 1], [PADDING, PADDING], [1, 1], 1),
    )
    .reshape([batch, 2, 2, outputs, height + 1, width + 1]);
    // Phase (a, b) reads windows a..a + h by b..b + w.
    let phase = |a: usize, b: usize| {
        windows
            .clone()
            .slice([
                0..batch,
                a..a + 1,
                b..b + 1,
                0..outputs,
                a..a + height,
                b..b + width,
            ])
            .reshape([batch, outputs, height, width])
    };
    // Output row 2m + a and column 2n + b: [batch, out, h, a, w, b] → [batch, out, 2h, 2w].
    let row_phase = |a: usize| Tensor::stack::<5>(vec![phase(a, 0), phase(a, 1)], 4);
    Tensor::stack::<6>(vec![row_phase(0), row_phase(1)], 3).reshape([
        batch,
        outputs,
        STRIDE * height,
        STRIDE * width,
    ])
}

/// The generator's output layer `conv` applied to `input`, computed by `method`. A layer the
/// transposed form is not derived for (stride, dilation, groups or asymmetric padding; the
/// generator builds none) is computed as the convolution it is.
pub fn output_layer<B: Backend>(
    conv: &Conv2d<B>,
    input: Tensor<B, 4>,
    method: OutputLayer,
) -> Tensor<B, 4> {
    let padding = match method {
        OutputLayer::Convolution => None,
        OutputLayer::Transposed => transposed_padding(conv),
    };
    let Some(padding) = padding else {
        return conv.forward(input);
    };
    // [out, in, kh, kw] → [in, out, kh, kw], flipped: tap t of the transposed convolution is
    // tap k − 1 − t of the convolution.
    let weight = conv.weight.val().swap_dims(0, 1).flip([2, 3]);
    conv_transpose2d(
        input,
        weight,
        conv.bias.as_ref().map(|bias| bias.val()),
        ConvTransposeOptions::new([1, 1], padding, [0, 0], [1, 1], 1),
    )
}

/// The padding of the stride-1 transposed convolution equal to `conv`, `k − 1 − p` per axis,
/// if `conv` is a stride-1 convolution with symmetric padding `p < k`.
fn transposed_padding<B: Backend>(conv: &Conv2d<B>) -> Option<[usize; 2]> {
    let [kernel_h, kernel_w] = conv.kernel_size;
    let [pad_h, pad_w] = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        PaddingConfig2d::Same if kernel_h % 2 == 1 && kernel_w % 2 == 1 => {
            [kernel_h / 2, kernel_w / 2]
        }
        _ => return None,
    };
    let plain = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
    (plain && pad_h < kernel_h && pad_w < kernel_w)
        .then(|| [kernel_h - 1 - pad_h, kernel_w - 1 - pad_w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ComputeBackend as Cpu, TrainBackend as Train};
    use burn::module::Param;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    fn layer<B: Backend>(inputs: usize, outputs: usize, device: &B::Device) -> ConvTranspose2d<B> {
        ConvTranspose2dConfig::new([inputs, outputs], [KERNEL, KERNEL])
            .with_stride([STRIDE, STRIDE])
            .with_padding([PADDING, PADDING])
            .init(device)
    }

    fn normal_input(shape: [usize; 4]) -> Tensor<Cpu, 4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Outputs equal up to float rounding.
    fn assert_close(got: Tensor<Cpu, 4>, want: Tensor<Cpu, 4>) {
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
    }

    /// The phases' output equals burn's transposed convolution's, on shapes with every size
    /// distinct (so a swapped axis cannot pass) and the generator's own 7 → 14.
    #[test]
    fn phases_compute_the_transposed_convolution() {
        let device = Default::default();
        for (batch, inputs, outputs, height, width) in [(2, 3, 5, 4, 6), (3, 9, 8, 7, 7)] {
            let layer = layer::<Cpu>(inputs, outputs, &device);
            let input = normal_input([batch, inputs, height, width]);
            let phases = upsample(&layer, input.clone(), Upsampling::Phases);
            assert_eq!(phases.dims(), [batch, outputs, 2 * height, 2 * width]);
            assert_close(phases, upsample(&layer, input, Upsampling::Transposed));
        }
    }

    /// A single input pixel and a kernel of distinct taps: each output pixel names the tap it
    /// got, so a wrong tap, flip or phase order shows as a wrong number, not only a small error.
    #[test]
    fn each_output_pixel_gets_the_tap_the_definition_gives() {
        let device = Default::default();
        let mut layer = layer::<Cpu>(1, 1, &device);
        let taps: Vec<f32> = (1..=16).map(|tap| tap as f32).collect();
        layer.weight = layer
            .weight
            .map(|_| Tensor::<Cpu, 1>::from_floats(taps.as_slice(), &device).reshape([1, 1, 4, 4]));
        layer.bias = layer.bias.map(|bias| bias.map(|bias| bias.zeros_like()));
        // One 1 at input (1, 2) of a 3×4 map: output (o, p) gets tap (o + 1 − 2, p + 1 − 4).
        let mut pixels = vec![0.0f32; 12];
        pixels[4 + 2] = 1.0;
        let input = Tensor::<Cpu, 1>::from_floats(pixels.as_slice(), &device).reshape([1, 1, 3, 4]);
        let output = upsample(&layer, input, Upsampling::Phases)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for o in 0..6usize {
            for p in 0..8usize {
                let (t_row, t_col) = ((o + 1).checked_sub(2), (p + 1).checked_sub(4));
                let expected = match (t_row, t_col) {
                    (Some(r), Some(c)) if r < 4 && c < 4 => taps[r * 4 + c],
                    _ => 0.0,
                };
                assert_eq!(output[o * 8 + p], expected, "output pixel ({o}, {p})");
            }
        }
    }

    /// Training sees the same gradients either way: of the input, the weight and the bias.
    #[test]
    fn phases_have_the_transposed_convolutions_gradients() {
        let device = Default::default();
        let layer = layer::<Train>(4, 6, &device);
        let parameters = (&layer.weight, layer.bias.as_ref().unwrap());
        let (input, loss) = input_and_loss([2, 4, 5, 3], [2, 6, 10, 6]);
        let gradients = |method| {
            gradients_of((&input, &loss), parameters, |input| {
                upsample(&layer, input, method)
            })
        };
        assert_same_gradients(
            &gradients(Upsampling::Phases),
            &gradients(Upsampling::Transposed),
        );
    }

    /// The gradients of `input`, of `weight` and of `bias` under the loss Σ `pixel_weights` ·
    /// `layer(input)`, which weights every output pixel differently.
    fn gradients_of(
        (input, pixel_weights): (&Tensor<Train, 4>, &Tensor<Train, 4>),
        (weight, bias): (&Param<Tensor<Train, 4>>, &Param<Tensor<Train, 1>>),
        layer: impl Fn(Tensor<Train, 4>) -> Tensor<Train, 4>,
    ) -> [TensorData; 3] {
        let input = input.clone().require_grad();
        let grads = (layer(input.clone()) * pixel_weights.clone())
            .sum()
            .backward();
        [
            input.grad(&grads).unwrap().into_data(),
            weight.val().grad(&grads).unwrap().into_data(),
            bias.val().grad(&grads).unwrap().into_data(),
        ]
    }

    /// An input and a loss's per-pixel weights for a layer from `input` to `output` shapes.
    fn input_and_loss(
        input: [usize; 4],
        output: [usize; 4],
    ) -> (Tensor<Train, 4>, Tensor<Train, 4>) {
        let device = Default::default();
        let normal = Distribution::Normal(0.0, 1.0);
        (
            Tensor::random(input, normal, &device),
            Tensor::random(output, normal, &device),
        )
    }

    /// Gradients of the input, the weight and the bias, equal up to float rounding.
    fn assert_same_gradients(got: &[TensorData; 3], want: &[TensorData; 3]) {
        for (name, (got, want)) in ["input", "weight", "bias"].iter().zip(got.iter().zip(want)) {
            assert_eq!(got.shape, want.shape, "{name}");
            got.assert_approx_eq::<f32>(want, Tolerance::absolute(1e-4));
        }
    }

    /// A convolution like the generator's output layer (7×7, padding 3, stride 1), with every
    /// size distinct.
    fn output_conv<B: Backend>(inputs: usize, outputs: usize, device: &B::Device) -> Conv2d<B> {
        Conv2dConfig::new([inputs, outputs], [7, 7])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .init(device)
    }

    #[test]
    fn the_transposed_output_layer_computes_the_convolution() {
        let device = Default::default();
        for (batch, inputs, outputs, height, width) in [(2, 5, 3, 9, 6), (3, 8, 1, 28, 28)] {
            let conv = output_conv::<Cpu>(inputs, outputs, &device);
            let input = normal_input([batch, inputs, height, width]);
            let transposed = output_layer(&conv, input.clone(), OutputLayer::Transposed);
            assert_eq!(transposed.dims(), [batch, outputs, height, width]);
            assert_close(
                transposed,
                output_layer(&conv, input, OutputLayer::Convolution),
            );
        }
    }

    #[test]
    fn the_transposed_output_layer_has_the_convolutions_gradients() {
        let device = Default::default();
        let conv = output_conv::<Train>(5, 3, &device);
        let parameters = (&conv.weight, conv.bias.as_ref().unwrap());
        let (input, loss) = input_and_loss([2, 5, 9, 6], [2, 3, 9, 6]);
        let gradients = |method| {
            gradients_of((&input, &loss), parameters, |input| {
                output_layer(&conv, input, method)
            })
        };
        assert_same_gradients(
            &gradients(OutputLayer::Transposed),
            &gradients(OutputLayer::Convolution),
        );
    }

    /// A layer the transposed form is not derived for is computed as the convolution it is.
    #[test]
    fn other_convolutions_stay_convolutions() {
        let device = Default::default();
        let strided = Conv2dConfig::new([3, 2], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<Cpu>(&device);
        let asymmetric = Conv2dConfig::new([3, 2], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 1))
            .init::<Cpu>(&device);
        let input = Tensor::<Cpu, 4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        for conv in [strided, asymmetric] {
            assert_eq!(transposed_padding(&conv), None);
            let expected = conv.forward(input.clone()).into_data();
            let got = output_layer(&conv, input.clone(), OutputLayer::Transposed).into_data();
            assert_eq!(got, expected);
        }
        let same = Conv2dConfig::new([3, 2], [5, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<Cpu>(&device);
        assert_eq!(transposed_padding(&same), Some([2, 1]));
    }

    /// The generator computed every way draws the same images from the same weights and noise:
    /// each choice reaches its layers, and nothing else changes.
    #[test]
    fn the_generator_draws_the_same_images_every_way() {
        let device = Default::default();
        let (mut generator, _) = crate::gan::GanConfig::new(3)
            .with_width(8)
            .with_latent_dim(6)
            .init::<Cpu>(&device)
            .unwrap();
        assert_eq!(generator.kernels(), GeneratorKernels::default());
        let noise = Tensor::<Cpu, 2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
        let labels = Tensor::<Cpu, 1, Int>::from_ints([0, 1, 2, 1], &device);
        let mut draw = |upsampling, output_layer| {
            generator.set_kernels(GeneratorKernels {
                upsampling,
                output_layer,
            });
            generator.forward(noise.clone(), labels.clone()).into_data()
        };
        let plain = draw(Upsampling::Transposed, OutputLayer::Convolution);
        assert_eq!(plain.shape.dims::<4>(), [4, 1, 28, 28]);
        for (upsampling, output_layer) in [
            (Upsampling::Phases, OutputLayer::Convolution),
            (Upsampling::Transposed, OutputLayer::Transposed),
            (Upsampling::Phases, OutputLayer::Transposed),
        ] {
            draw(upsampling, output_layer)
                .assert_approx_eq::<f32>(&plain, Tolerance::absolute(1e-5));
        }
    }

    /// The CPU backends compute the output layer transposed, the GPU as a convolution.
    #[test]
    fn each_backend_gets_its_faster_output_layer() {
        for (backend, output_layer) in [
            ("flex", OutputLayer::Transposed),
            ("ndarray", OutputLayer::Transposed),
            ("cuda", OutputLayer::Convolution),
        ] {
            let kernels = GeneratorKernels::for_backend(backend);
            assert_eq!(kernels.output_layer, output_layer, "{backend}");
            assert_eq!(kernels.upsampling, Upsampling::Transposed, "{backend}");
        }
    }

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for method in [Upsampling::Transposed, Upsampling::Phases] {
            assert_eq!(method.name().parse::<Upsampling>(), Ok(method));
        }
        for method in [OutputLayer::Convolution, OutputLayer::Transposed] {
            assert_eq!(method.name().parse::<OutputLayer>(), Ok(method));
        }
        let error = "pixelshuffle".parse::<Upsampling>().unwrap_err();
        assert_eq!(
            error,
            "unknown up-sampling \"pixelshuffle\" (expected one of: transposed, phases)"
        );
        let error = "dense".parse::<OutputLayer>().unwrap_err();
        assert_eq!(
            error,
            "unknown output layer \"dense\" (expected one of: convolution, transposed)"
        );
    }
}
