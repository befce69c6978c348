// Builds packages of the guest workspace (`plugins/`, which also holds the test components
// under `tests/components/`) for wasm32-wasip2. One helper for `host/build.rs` (the built-in
// connectors) and the end-to-end tests (the test components); both `include!` or `#[path]` it.

/// Builds `packages` in release mode into `target_dir` and returns the path of each
/// package's component, `target_dir/wasm32-wasip2/release/ARTIFACT.wasm`, in order.
/// `packages` are (package name, artifact name) pairs.
pub fn build_guests(
    repo: &std::path::Path,
    packages: &[(&str, &str)],
    target_dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, String> {
    let workspace = repo.join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(workspace.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir)
    // plugins/.cargo/config.toml holds the wasm target's flags.
    .current_dir(&workspace);
    for (package, _) in packages {
        cmd.args(["-p", package]);
    }
    // The caller runs inside an outer cargo whose CARGO_* variables and flags are for the
    // host build, not for wasm: a nested cargo gets a clean environment.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k == "RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
        {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running cargo to build {packages:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {packages:?} for wasm32-wasip2 failed; is the target installed? \
             (rustup target add wasm32-wasip2)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    packages
        .iter()
        .map(|(_, artifact)| {
            let wasm = target_dir.join(format!("wasm32-wasip2/release/{artifact}.wasm"));
            if wasm.exists() {
                Ok(wasm)
            } else {
                Err(format!("{} was not built", wasm.display()))
            }
        })
        .collect()
}
