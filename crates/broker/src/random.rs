//! The broker's randomness: the operating system's at run time (`OsRandom`, which
//! lives beside the trait in `protocol::random`), a seeded stream in tests.

pub use protocol::random::OsRandom;
