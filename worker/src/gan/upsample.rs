//! The generator's 2× up-sampling layer — a transposed convolution, kernel 4, stride 2,
//! padding 1 — computed one of two ways that give the same numbers up to float rounding.
//!
//! [`Upsampling::Transposed`] calls burn's `conv_transpose2d`. [`Upsampling::Phases`] computes
//! the same layer as one stride-1 convolution ("sub-pixel" decomposition): every output pixel
//! of a stride-2 transposed convolution with a 4×4 kernel receives exactly 2×2 of the kernel's
//! taps, and which 2×2 depends only on the pixel's phase (its row and column parity). So one
//! convolution with 2×2 kernels and four times the output channels, one group of channels per
//! phase, computes all four phases over the input, and interleaving them gives the output.
//! It does the same multiplications (plus one padded row and column per phase), and it runs
//! on a backend's ordinary convolution instead of its transposed one — on burn 0.21's GPU
//! backend the transposed convolution has only direct and col2im kernels, while the ordinary
//! one has implicit-GEMM kernels (issue 9's hypothesis for the GPU step time; `bench/gpu.sh`
//! measures both). The weights are the layer's own, so checkpoints do not depend on the choice.
//!
//! The derivation, per axis: output row `o` gets input row `i` through kernel tap `t` when
//! `o = 2i − 1 + t`. For an even row `o = 2m` that is `t = 1` (from `i = m`) and `t = 3`
//! (`i = m − 1`); for an odd row `o = 2m + 1`, `t = 0` (`i = m + 1`) and `t = 2` (`i = m`).
//! With the input padded by one row each side, the 2-tap window starting at padded row `j`
//! holds input rows `j − 1` and `j`: phase `a` (the row parity) reads the window at `j = m + a`
//! and its tap `u` (0 or 1) is kernel tap `t = 3 − a − 2u`, which is the flipped kernel's row
//! `a + 2u`. Columns alike.

use std::fmt;
use std::str::FromStr;

use burn::nn::conv::ConvTranspose2d;
use burn::prelude::*;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// How the generator computes its up-sampling layers (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Upsampling {
    /// burn's transposed convolution.
    #[default]
    Transposed,
    /// One stride-1 convolution computing the four output phases, then interleaved.
    Phases,
}

impl Upsampling {
    pub const NAMES: &str = "transposed, phases";

    pub fn name(self) -> &'static str {
        match self {
            Upsampling::Transposed => "transposed",
            Upsampling::Phases => "phases",
        }
    }
}

impl fmt::Display for Upsampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Upsampling {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "transposed" => Ok(Upsampling::Transposed),
            "phases" => Ok(Upsampling::Phases),
            other => Err(format!(
                "unknown up-sampling {other:?} (expected one of: {})",
                Upsampling::NAMES
            )),
        }
    }
}

/// The geometry [`Upsampling::Phases`] is derived for: the generator's only one.
const KERNEL: usize = 4;
const STRIDE: usize = 2;
const PADDING: usize = 1;

/// `layer` applied to `input` `[batch, in, h, w]` → `[batch, out, 2h, 2w]`, computed by
/// `method`. `layer` must be the generator's geometry (kernel 4, stride 2, padding 1, no output
/// padding, dilation 1, one group); the generator builds no other.
pub fn upsample<B: Backend>(
    layer: &ConvTranspose2d<B>,
    input: Tensor<B, 4>,
    method: Upsampling,
) -> Tensor<B, 4> {
    let weight = layer.weight.val();
    let bias = layer.bias.as_ref().map(|bias| bias.val());
    match method {
        Upsampling::Transposed => conv_transpose2d(
            input,
            weight,
            bias,
            ConvTransposeOptions::new(
                layer.stride,
                layer.padding,
                layer.padding_out,
                layer.dilation,
                layer.groups,
            ),
        ),
        Upsampling::Phases => {
            debug_assert!(
                layer.kernel_size == [KERNEL; 2]
                    && layer.stride == [STRIDE; 2]
                    && layer.padding == [PADDING; 2]
                    && layer.padding_out == [0; 2]
                    && layer.dilation == [1; 2]
                    && layer.groups == 1,
                "the phase decomposition is derived for the generator's geometry only"
            );
            upsample_by_phases(input, weight, bias)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ComputeBackend as Cpu, TrainBackend as Train};
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    fn layer<B: Backend>(inputs: usize, outputs: usize, device: &B::Device) -> ConvTranspose2d<B> {
        ConvTranspose2dConfig::new([inputs, outputs], [KERNEL, KERNEL])
            .with_stride([STRIDE, STRIDE])
            .with_padding([PADDING, PADDING])
            .init(device)
    }

    /// The phases' output equals burn's transposed convolution's, on shapes with every size
    /// distinct (so a swapped axis cannot pass) and the generator's own 7 → 14.
    #[test]
    fn phases_compute_the_transposed_convolution() {
        let device = Default::default();
        for (batch, inputs, outputs, height, width) in [(2, 3, 5, 4, 6), (3, 9, 8, 7, 7)] {
            let layer = layer::<Cpu>(inputs, outputs, &device);
            let input = Tensor::<Cpu, 4>::random(
                [batch, inputs, height, width],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expected = upsample(&layer, input.clone(), Upsampling::Transposed);
            let phases = upsample(&layer, input, Upsampling::Phases);
            assert_eq!(phases.dims(), [batch, outputs, 2 * height, 2 * width]);
            phases
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
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
        let input =
            Tensor::<Train, 4>::random([2, 4, 5, 3], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
        // A loss that weights every output pixel differently.
        let weights =
            Tensor::<Train, 4>::random([2, 6, 10, 6], Distribution::Normal(0.0, 1.0), &device);
        let gradients = |method: Upsampling| {
            let loss = (upsample(&layer, input.clone(), method) * weights.clone()).sum();
            let grads = loss.backward();
            let bias = layer.bias.as_ref().unwrap().val();
            [
                input.grad(&grads).unwrap().into_data(),
                layer.weight.val().grad(&grads).unwrap().into_data(),
                bias.grad(&grads).unwrap().into_data(),
            ]
        };
        let expected = gradients(Upsampling::Transposed);
        let phases = gradients(Upsampling::Phases);
        for (name, (got, want)) in ["input", "weight", "bias"]
            .iter()
            .zip(phases.iter().zip(&expected))
        {
            assert_eq!(got.shape, want.shape, "{name}");
            got.assert_approx_eq::<f32>(want, Tolerance::absolute(1e-4));
        }
    }

    /// The generator computed either way draws the same images from the same weights and noise:
    /// the choice reaches every up-sampling layer, and nothing else changes.
    #[test]
    fn the_generator_draws_the_same_images_either_way() {
        let device = Default::default();
        let (mut generator, _) = crate::gan::GanConfig::new(3)
            .with_width(8)
            .with_latent_dim(6)
            .init::<Cpu>(&device)
            .unwrap();
        assert_eq!(
            generator.upsampling(),
            Upsampling::Transposed,
            "the default"
        );
        let noise = Tensor::<Cpu, 2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
        let labels = Tensor::<Cpu, 1, Int>::from_ints([0, 1, 2, 1], &device);
        let transposed = generator.forward(noise.clone(), labels.clone());
        generator.set_upsampling(Upsampling::Phases);
        let phases = generator.forward(noise, labels);
        assert_eq!(phases.dims(), [4, 1, 28, 28]);
        phases
            .into_data()
            .assert_approx_eq::<f32>(&transposed.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for method in [Upsampling::Transposed, Upsampling::Phases] {
            assert_eq!(method.name().parse::<Upsampling>(), Ok(method));
        }
        let error = "pixelshuffle".parse::<Upsampling>().unwrap_err();
        assert!(
            error.contains("pixelshuffle") && error.contains("phases"),
            "{error}"
        );
    }
}
