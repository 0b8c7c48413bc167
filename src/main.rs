//! The `junkquote` command: everything is in the library.

fn main() -> std::process::ExitCode {
    junkquote::cli::main()
}
