//! The benchmark programs' command-line options: `--name value` numbers and `--name` flags.

/// The number after `name`, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `name` was given.
#[allow(dead_code)]
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
