//! conch: shell commands under etcd coordination. The binaries are thin
//! wrappers over [`tool::main`]; the library is public so that the
//! integration tests can drive the etcd facade directly.

pub mod cli;
pub mod etcd;
pub mod keys;
pub mod kit;
pub mod recipe;
pub mod record;
pub mod runtime;
pub mod schedule;
pub mod tool;
