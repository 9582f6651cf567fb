//! The inner loops shared by training and inference: SIMD exponentials, dot products over f32 and
//! the stored row formats, the row loops picked per CPU at run time, and a bounds-checked matrix
//! product over slices.

pub mod dot;
pub mod exp;
pub mod gemm;
pub mod rows;
