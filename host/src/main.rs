use std::process::ExitCode;

fn main() -> ExitCode {
    flowhost::cli::main()
}
