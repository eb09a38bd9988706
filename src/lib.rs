//! iptables-docker: a host firewall that keeps every Docker rule.
//!
//! Pipeline, one module a stage: [`ruleset`] (parse/serialize `iptables-save`),
//! [`ownership`] (what is Docker's), [`config`] + [`policy`] (the host policy),
//! [`compose`] (the ruleset to load), [`pipeline`] (one family's plan); [`system`] runs
//! the processes; [`commands`] ties them to the CLI.

pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod error;
pub mod exposure;
pub mod family;
pub mod guard;
pub mod ownership;
pub mod pipeline;
pub mod policy;
pub mod rollback;
pub mod rule;
pub mod ruleset;
pub mod system;
