//! Evaluation: does anygan fix the imbalance? The metrics of BENCHMARK.md and (next) the fixed
//! classifier trained on each rebalancing method.

pub mod augment;
pub mod charts;
pub mod classifier;
pub mod deferral;
pub mod fidelity;
pub mod judge;
pub mod methods;
pub mod metrics;
pub mod novelty;
pub mod run;
pub mod stand_in;
pub mod tasks;
pub mod verdict;
