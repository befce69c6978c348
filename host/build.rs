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
    ("unix", "unix-connector", "unix"),
    ("google", "google-connector", "google"),
    ("scim", "scim-connector", "scim"),
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
        // Every built-in is written with the SDK and the guest allocator.
        repo.join("sdk/rust/src"),
        repo.join("sdk/rust/Cargo.toml"),
        plugins.join("alloc"),
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
    embed_sdk(&repo, &out);
}

/// Embeds what `roster plugin new` writes: the templates of `sdk/templates/LANG/`, the Rust
/// SDK's source (vendored into generated Rust projects) and the contract in `wit/`.
fn embed_sdk(repo: &std::path::Path, out: &std::path::Path) {
    let sdk = repo.join("sdk");
    println!("cargo:rerun-if-changed={}", sdk.join("templates").display());
    println!("cargo:rerun-if-changed={}", sdk.join("rust").display());
    let mut src = String::new();
    let mut list = |name: &str, dir: &std::path::Path, skip: &[&str]| {
        src.push_str(&format!("pub const {name}: &[(&str, &[u8], bool)] = &[\n"));
        let mut files = Vec::new();
        walk(dir, dir, skip, &mut files);
        files.sort();
        for (rel, abs) in files {
            println!("cargo:rerun-if-changed={}", abs.display());
            // Executable files (a build script) stay executable in generated projects.
            let exec = executable(&abs);
            let abs = abs.display().to_string();
            src.push_str(&format!(
                "    ({rel:?}, include_bytes!({abs:?}), {exec}),\n"
            ));
        }
        src.push_str("];\n");
    };
    for lang in ["rust", "python", "js"] {
        let name = format!("TEMPLATE_{}", lang.to_uppercase());
        list(&name, &sdk.join("templates").join(lang), &[]);
    }
    // The SDK's `wit` is a link to the repository's; generated projects get a copy.
    list(
        "SDK_RUST",
        &sdk.join("rust"),
        &["target", "wit", "Cargo.lock"],
    );
    list("WIT", &repo.join("wit"), &[]);
    std::fs::write(out.join("sdk.rs"), src).unwrap();
}

#[cfg(unix)]
fn executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(_: &std::path::Path) -> bool {
    false
}

/// Every file under `dir` as (path relative to `root` with `/`, absolute path); a missing
/// directory has none.
fn walk(
    root: &std::path::Path,
    dir: &std::path::Path,
    skip: &[&str],
    files: &mut Vec<(String, PathBuf)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) && dir == root {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, skip, files);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            files.push((rel.replace('\\', "/"), path.canonicalize().unwrap()));
        }
    }
}
