//! Data-parallel gradient averaging: a module's gradients flattened into one vector in
//! `#[derive(Module)]` order (identical on every rank; ParamIds are not, so they never cross the
//! wire), averaged by a [`GradientAllReduce`], and written back before the optimizer step.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::collective::GradientAllReduce;
use crate::error::{Error, Result};

/// Replaces every gradient of `module` in `grads` by its mean over all replicas.
///
/// The gradients cross between the device and the host once each way per call: they are
/// joined into one vector on the device, read back in one transfer for the transport, and the
/// averaged vector is uploaded in one transfer and sliced on the device. On a GPU a read per
/// parameter would wait for the device once per parameter.
pub fn average_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    reducer: &mut dyn GradientAllReduce,
) -> Result<()> {
    if reducer.world_size() <= 1 {
        return Ok(());
    }
    let mut flatten = Flatten::<B> {
        grads,
        parts: Vec::new(),
    };
    module.visit(&mut flatten);
    let Some(device) = flatten.parts.first().map(Tensor::device) else {
        return Ok(()); // a module without parameters has nothing to average
    };
    let data = Tensor::cat(flatten.parts, 0).into_data().convert::<f32>();
    let mut values = data.into_vec::<f32>().map_err(|error| {
        Error::config(
            "gradients",
            format!("not readable as f32 values: {error:?}"),
        )
    })?;
    reducer.average(&mut values)?;
    let count = values.len();
    let averaged =
        Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(values, [count]), &device);
    let mut write_back = WriteBack::<B> {
        grads,
        averaged,
        offset: 0,
    };
    module.visit(&mut write_back);
    Ok(())
}

/// Gathers each parameter's gradient, flattened, in visiting order, still on the device.
struct Flatten<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let len = param.shape().num_elements();
        let part = match self.grads.get::<B::InnerBackend, D>(param.id) {
            Some(grad) => grad.reshape([len]),
            // A parameter without gradient (unused in this pass) still takes its place in the
            // vector, so offsets agree on every rank.
            None => Tensor::zeros([len], &param.val().inner().device()),
        };
        self.parts.push(part);
    }
}

/// Replaces each parameter's gradient by its slice of the averaged vector.
struct WriteBack<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    averaged: Tensor<B::InnerBackend, 1>,
    offset: usize,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for WriteBack<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let shape = param.shape();
        let len = shape.num_elements();
        let range = self.offset..self.offset + len;
        self.offset += len;
        if self.grads.remove::<B::InnerBackend, D>(param.id).is_some() {
            let averaged: Tensor<B::InnerBackend, D> =
                self.averaged.clone().slice([range]).reshape(shape);
            self.grads.register(param.id, averaged);
        }
    }
}
