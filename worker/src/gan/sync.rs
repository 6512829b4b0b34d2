//! Data-parallel gradient averaging: a module's gradients flattened into one vector in
//! `#[derive(Module)]` order (identical on every rank; ParamIds are not, so they never cross the
//! wire), averaged by a [`GradientAllReduce`], and written back before the optimizer step.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::collective::GradientAllReduce;
use crate::error::Result;

/// Replaces every gradient of `module` in `grads` by its mean over all replicas.
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
        values: Vec::new(),
        _backend: std::marker::PhantomData,
    };
    module.visit(&mut flatten);
    let mut values = flatten.values;
    reducer.average(&mut values)?;
    let mut write_back = WriteBack::<B> {
        grads,
        values: &values,
        offset: 0,
        _backend: std::marker::PhantomData,
    };
    module.visit(&mut write_back);
    Ok(())
}

struct Flatten<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    values: Vec<f32>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let len = param.shape().num_elements();
        match self.grads.get::<B::InnerBackend, D>(param.id) {
            Some(grad) => {
                let data = grad.into_data().convert::<f32>();
                // converted to f32 just above, so the slice view exists
                self.values
                    .extend_from_slice(data.as_slice::<f32>().unwrap_or(&[]));
            }
            // A parameter without gradient (unused in this pass) still takes its place in the
            // vector, so offsets agree on every rank.
            None => self.values.extend(std::iter::repeat_n(0.0, len)),
        }
    }
}

struct WriteBack<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    values: &'a [f32],
    offset: usize,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for WriteBack<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let shape = param.shape();
        let len = shape.num_elements();
        let slice = &self.values[self.offset..self.offset + len];
        self.offset += len;
        if let Some(local) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let device = local.device();
            let averaged = Tensor::<B::InnerBackend, D>::from_data(
                TensorData::new(slice.to_vec(), shape),
                &device,
            );
            self.grads.register(param.id, averaged);
        }
    }
}
