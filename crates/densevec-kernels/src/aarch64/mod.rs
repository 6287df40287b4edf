//! aarch64 kernels: NEON.
pub mod neon;
