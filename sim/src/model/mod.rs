//! The model of the platform: admission, strategies and objects.

pub mod admission;
pub mod object;
pub mod strategy;
