//! The model's candle custom ops, each one node of the training graph with a hand-written backward
//! where candle's composed ops cost too much or have none: linear layers, LayerNorm, seeded
//! dropout, fused attention, the GRU recurrence and the softmax-family losses.

pub mod candidate_loss;
pub(crate) mod cpu_storage;
pub mod dropout;
pub mod fused_attention;
pub mod fused_gru;
pub mod layer_norm;
pub mod linear;
