use clap::Parser;

fn main() {
    let cli = sweep::cli::Cli::parse();
    if let Err(e) = sweep::cli::run(cli) {
        // `{:#}` prints the whole context chain on one error, ending at the user's input.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
