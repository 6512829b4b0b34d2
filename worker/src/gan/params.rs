//! Walking a module's parameters in their `#[derive(Module)]` order, which is identical in every
//! process: forcing lazy initialization, counting, and flattening them with their paths.

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;

/// One parameter tensor read back to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Dotted module path, e.g. `upsample.0.weight`.
    pub name: String,
    /// The struct that owns the parameter, as burn names it (e.g. `Struct:Linear`).
    pub owner: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Returns `module` with every lazily-initialized parameter materialized.
pub fn force_init<B: Backend, M: Module<B>>(module: M) -> M {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _materialized = param.val();
        }
    }
    module.visit(&mut Touch);
    module
}

/// Number of float parameters (weights and biases).
pub fn parameter_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += param.shape().num_elements();
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// Shapes of every float parameter, in module order.
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().dims().to_vec());
        }
    }
    let mut shapes = Shapes(Vec::new());
    module.visit(&mut shapes);
    shapes.0
}

/// Every float parameter with its path, in module order.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> Vec<NamedTensor> {
    struct Collect {
        path: Vec<(String, String)>,
        out: Vec<NamedTensor>,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path
                .push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            let values = tensor
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .unwrap_or_default(); // converted to f32 just above, so this cannot fail
            let name: Vec<&str> = self.path.iter().map(|(part, _)| part.as_str()).collect();
            let owner = self
                .path
                .last()
                .map(|(_, owner)| owner.clone())
                .unwrap_or_default();
            self.out.push(NamedTensor {
                name: name.join("."),
                owner,
                shape,
                values,
            });
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out
}

/// Bit patterns of every parameter, for exact comparisons between runs.
pub fn parameter_bits<B: Backend, M: Module<B>>(module: &M) -> Vec<u32> {
    named_tensors(module)
        .into_iter()
        .flat_map(|t| t.values.into_iter().map(f32::to_bits))
        .collect()
}
