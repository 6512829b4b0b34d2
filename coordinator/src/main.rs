//! `coordinator`: serves one anygan job (`start`) and reports on it (`status`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
