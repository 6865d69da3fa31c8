//! The `repro` binary: everything is in the library; see `repro::cli`.

fn main() -> std::process::ExitCode {
    repro::cli::main()
}
