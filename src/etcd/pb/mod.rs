//! Generated from proto/ by `make proto` (proto/gen). Do not edit.
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod mvccpb {
    include!("mvccpb.rs");
}
pub mod etcdserverpb {
    include!("etcdserverpb.rs");
}
