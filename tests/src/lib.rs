//! Cluster-level scenario tests of anygan. The single-device scenarios live in `tests/`; the
//! multi-process `TestCluster` harness arrives with distributed training (issue 3).
