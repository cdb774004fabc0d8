//! Tests of the sandbox simulators.
