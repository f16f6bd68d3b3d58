//! Command-line interface: clap parsing ([`args`]), one thin function per subcommand that calls
//! one [`crate::pipeline`] function, and the output ([`output`]) they all print through.

pub mod args;
mod commands;
pub mod output;

pub use args::Cli;
pub use commands::run;
