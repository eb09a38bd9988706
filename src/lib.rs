//! iptables-docker: a host firewall that keeps every Docker rule.
//!
//! Pipeline, one module a stage: [`ruleset`] (parse/serialize `iptables-save`),
//! [`ownership`] (what is Docker's), [`config`] + [`policy`] (the host policy),
//! [`compose`] (the ruleset to load), [`pipeline`] (one family's plan); [`system`] runs
//! the processes; [`setup`] is the host setup `install` and `uninstall` share;
//! [`commands`] ties them to the CLI.

// Unsafe code lives in `system` only; every other module forbids it.

pub mod backend;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod diagnostic;
pub mod error;
pub mod exposure;
pub mod fallback;
pub mod family;
pub mod forwarding;
pub mod fragments;
pub mod guard;
pub mod hash;
pub mod host_rule;
pub mod ownership;
pub mod pipeline;
pub mod policy;
pub mod presets;
pub mod report;
pub mod rollback;
pub mod rule;
pub mod ruleset;
pub mod rulespec;
pub mod setup;
pub mod system;
pub mod transaction;
