//! How a command's result reaches the terminal, chosen once from the global flags.

use super::args::OutputArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
    Quiet,
}

impl OutputArgs {
    pub fn mode(&self) -> Output {
        if self.json {
            Output::Json
        } else if self.quiet {
            Output::Quiet
        } else {
            Output::Human
        }
    }
}
