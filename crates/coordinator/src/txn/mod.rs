//! The transaction coordinator: transactional ids, producer epochs and the
//! two-phase end of a transaction.

pub mod coordinator;
pub mod records;

#[cfg(test)]
mod tests;
