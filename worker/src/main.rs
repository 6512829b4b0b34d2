//! `worker`: one process per device. `worker train` trains the cDCGAN on one device.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
