//! Builds the built-in connectors in `plugins/` for wasm32-wasip2 and embeds them, so the
//! `roster` binary is self-contained (the wasm-builder pattern).
use std::path::PathBuf;
use std::process::Command;

/// Built-in connectors: (plugin name, crate artifact name).
const BUILTINS: &[&str] = &["csv"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for path in [
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        plugins.join(".cargo/config.toml"),
        manifest_dir.join("../wit"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for name in BUILTINS {
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(name).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(name).join("Cargo.toml").display()
        );
    }
    // Nested cargo gets its own target dir (no lock clash with the outer build) and a clean
    // environment: the outer build's flags are for the host, not for wasm.
    let target_dir = std::env::var("ROSTER_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| plugins.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(plugins.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    // plugins/.cargo/config.toml holds the wasm target's flags.
    .current_dir(&plugins);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER"
        {
            cmd.env_remove(k);
        }
    }
    let status = cmd
        .status()
        .expect("run cargo to build the built-in plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins failed; is the wasm32-wasip2 target installed? \
             (rustup target add wasm32-wasip2)"
        );
    }
    let mut list = String::from("pub const BUILTIN: &[(&str, &[u8])] = &[\n");
    for name in BUILTINS {
        let wasm = target_dir.join(format!("wasm32-wasip2/release/{name}.wasm"));
        let dest = out.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", wasm.display()));
        list.push_str(&format!(
            "    ({name:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.wasm\"))),\n"
        ));
    }
    list.push_str("];\n");
    std::fs::write(out.join("builtin.rs"), list).unwrap();
}
