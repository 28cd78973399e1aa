//! The group coordinator: membership, rebalances and committed offsets.

pub mod coordinator;
pub mod offsets;
pub mod pending;
pub mod records;
pub mod state;
mod sync;

#[cfg(test)]
mod tests;
