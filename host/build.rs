//! Builds the built-in connectors in `plugins/` for wasm32-wasip2 and embeds them, so the
//! `roster` binary is self-contained (the wasm-builder pattern).
use std::path::PathBuf;

include!("guest_build.rs");

/// Built-in connectors: (plugin name, package, artifact name).
const BUILTINS: &[(&str, &str, &str)] = &[
    ("csv", "csv-connector", "csv"),
    ("ldap", "ldap-connector", "ldap"),
    ("entra", "entra-connector", "entra"),
    ("script", "script-connector", "script"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.join("..");
    let plugins = repo.join("plugins");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut watched = vec![
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        plugins.join(".cargo/config.toml"),
        repo.join("wit"),
        manifest_dir.join("guest_build.rs"),
    ];
    for (name, _, _) in BUILTINS {
        watched.push(plugins.join(name).join("src"));
        watched.push(plugins.join(name).join("Cargo.toml"));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // The nested cargo gets its own target dir: no lock clash with the outer build.
    let target_dir = std::env::var("ROSTER_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| plugins.join("target"));
    let packages: Vec<_> = BUILTINS.iter().map(|(_, p, a)| (*p, *a)).collect();
    let built = build_guests(&repo, &packages, &target_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut list = String::from("pub const BUILTIN: &[(&str, &[u8])] = &[\n");
    for ((name, _, _), wasm) in BUILTINS.iter().zip(built) {
        let dest = out.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", wasm.display()));
        list.push_str(&format!(
            "    ({name:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.wasm\"))),\n"
        ));
    }
    list.push_str("];\n");
    std::fs::write(out.join("builtin.rs"), list).unwrap();
}
