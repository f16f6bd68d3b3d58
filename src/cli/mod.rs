//! Command-line interface: clap parsing and dispatch to the library, nothing else.

pub mod args;
mod commands;
pub mod output;

pub use args::Cli;
pub use commands::run;
