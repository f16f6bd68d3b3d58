use clap::Parser;

fn main() {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`sweep collect ... | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = sweep::cli::Cli::parse();
    if let Err(e) = sweep::cli::run(cli) {
        // `{:#}` prints the whole context chain on one error, ending at the user's input.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
