//! The burn backend, chosen once at the edge by cargo feature: `cuda` when built with it,
//! otherwise the CPU backend (burn-flex by default, burn-ndarray for comparison).

#[cfg(feature = "cuda")]
mod selected {
    pub type Compute = burn_cuda::Cuda;
    pub const NAME: &str = "cuda";
}

#[cfg(all(not(feature = "cuda"), feature = "flex"))]
mod selected {
    pub type Compute = burn_flex::Flex;
    pub const NAME: &str = "flex";
}

#[cfg(all(not(feature = "cuda"), not(feature = "flex"), feature = "ndarray"))]
mod selected {
    pub type Compute = burn_ndarray::NdArray<f32>;
    pub const NAME: &str = "ndarray";
}

#[cfg(not(any(feature = "cuda", feature = "flex", feature = "ndarray")))]
compile_error!("anygan-worker needs one backend feature: `flex` (default), `ndarray` or `cuda`");

/// The backend tensors are computed on.
pub type ComputeBackend = selected::Compute;
/// The same backend with automatic differentiation, for training.
pub type TrainBackend = burn::backend::Autodiff<ComputeBackend>;
/// Name of the selected backend, for logs and benchmark tables.
pub const BACKEND_NAME: &str = selected::NAME;

/// The device of the selected backend; `ordinal` picks the GPU under `cuda`.
pub fn device(ordinal: usize) -> burn::prelude::Device<ComputeBackend> {
    #[cfg(feature = "cuda")]
    {
        burn_cuda::CudaDevice::new(ordinal)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal; // one CPU device
        Default::default()
    }
}
