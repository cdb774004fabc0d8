//! Time as a dependency: production reads the system clock, tests move a manual one.
//!
//! The clock lives in its own small crate (`crates/clock`) because the sandbox crate needs the same
//! [`Clock`] trait and cannot depend on this one; this module re-exports it so that
//! `crate::clock::...` names one trait for the service, its tests and the simulators.

pub use growth_engine_clock::{Clock, ManualClock, SharedClock, SystemClock};
