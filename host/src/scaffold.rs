//! `roster plugin new`: a ready-to-build connector project from the templates carried in the
//! binary (`sdk/templates/LANG/`), with the contract (`wit/`) and, for Rust, the SDK crate
//! vendored so the project builds offline.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/sdk.rs"));

/// Languages with a template.
pub const LANGS: &[&str] = &["rust", "python", "js"];

/// A template's files: path, contents, executable.
type Files = &'static [(&'static str, &'static [u8], bool)];

fn template(lang: &str) -> Result<Files> {
    let files = match lang {
        "rust" => TEMPLATE_RUST,
        "python" => TEMPLATE_PYTHON,
        "js" => TEMPLATE_JS,
        _ => bail!(
            "unknown language {lang:?}: choose one of {}",
            LANGS.join(", ")
        ),
    };
    if files.is_empty() {
        bail!("this roster carries no {lang} template");
    }
    Ok(files)
}

/// Plugin names are crate, package and file names: `[a-z][a-z0-9-]*`.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("plugin name {name:?} must start with a-z and hold only a-z, 0-9 and -");
    }
    Ok(())
}

/// Writes the project for plugin `name` in `lang` into `dir`, which must not exist or be
/// empty. Returns the files written, relative to `dir`.
pub fn new(name: &str, lang: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    check_name(name)?;
    let files = template(lang)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let snake = name.replace('-', "_");
    let fill = |s: &str| {
        s.replace("{{name}}", name)
            .replace("{{name_snake}}", &snake)
    };
    let mut written = Vec::new();
    let mut write = |rel: String, bytes: &[u8], exec: bool| -> Result<()> {
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        let bytes = match std::str::from_utf8(bytes) {
            Ok(text) => fill(text).into_bytes(),
            Err(_) => bytes.to_vec(),
        };
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        written.push(PathBuf::from(rel));
        Ok(())
    };
    for (rel, bytes, exec) in files {
        write(fill(rel), bytes, *exec)?;
    }
    for (rel, bytes, _) in WIT {
        write(format!("wit/{rel}"), bytes, false)?;
    }
    if lang == "rust" {
        for (rel, bytes, _) in SDK_RUST {
            let bytes = if *rel == "Cargo.toml" {
                vendored_manifest(bytes)?
            } else {
                bytes.to_vec()
            };
            write(format!("roster-plugin/{rel}"), &bytes, false)?;
        }
        for (rel, bytes, _) in WIT {
            write(format!("roster-plugin/wit/{rel}"), bytes, false)?;
        }
    }
    Ok(written)
}

/// The SDK's manifest without its place in roster's guest workspace.
fn vendored_manifest(bytes: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(bytes)?;
    let kept: Vec<&str> = (text.lines())
        .filter(|l| !l.trim_start().starts_with("workspace ="))
        .collect();
    Ok((kept.join("\n") + "\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_and_file_names() {
        for ok in ["a", "hr-api", "x2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2x", "Hr", "a_b", "a b", "../x", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_rust_project_is_filled_in_and_carries_the_sdk_and_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("my-dir");
        let files = new("my-dir", "rust", &d).unwrap();
        assert!(
            files.contains(&PathBuf::from("wit/plugin.wit")),
            "{files:?}"
        );
        assert!(files.contains(&PathBuf::from("roster-plugin/src/lib.rs")));
        assert!(files.contains(&PathBuf::from("roster-plugin/wit/types.wit")));
        let manifest = std::fs::read_to_string(d.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-dir\""), "{manifest}");
        assert!(std::fs::read_to_string(d.join("README.md"))
            .unwrap()
            .contains("release/my_dir.wasm"));
        let sdk = std::fs::read_to_string(d.join("roster-plugin/Cargo.toml")).unwrap();
        assert!(!sdk.contains("workspace ="), "{sdk}");
        // Nothing is overwritten.
        let again = new("my-dir", "rust", &d).unwrap_err().to_string();
        assert!(again.contains("not empty"), "{again}");
        assert!(new("x", "cobol", &dir.path().join("c")).is_err());
    }
}
