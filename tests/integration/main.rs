//! The integration tests, in one binary so the crate and its dependencies are linked once: each
//! module states the property it checks in its own header.

mod cli;
mod collapsed_padding;
mod common;
mod embed;
mod fast_path;
mod faults;
mod llmesr;
mod movielens;
mod new_items;
mod pipeline;
mod properties;
mod reference_step;
mod resume;
mod text_space;
