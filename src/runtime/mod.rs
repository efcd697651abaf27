//! The one runtime above the recipes: the event loop that drives any
//! [`Machine`](crate::kit::machine::Machine) against etcd, the children,
//! signals and a BOOTTIME timer, and the process and clock adapters it
//! needs. It knows machines, never a particular recipe.

pub mod child;
pub mod children;
pub mod clock;
pub mod driver;
pub mod keeper;
pub mod notify;
pub mod procs;
pub mod relay;
pub mod signals;
mod spawn;
pub mod terminal;
