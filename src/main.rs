//! The `streamgate` binary: parses the command line and hands over to [`streamgate::cli`].

fn main() -> std::process::ExitCode {
    streamgate::cli::main()
}
