//! Embeds every `rules/*.toml` pack into the library so the binary needs no files at run time.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut packs: Vec<(String, PathBuf)> = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or("pack file name is not UTF-8")?
                .to_string();
            println!("cargo:rerun-if-changed={}", path.display());
            packs.push((name, path));
        }
    }
    packs.sort();
    let mut src = String::from("pub(crate) static EMBEDDED_PACKS: &[(&str, &str)] = &[\n");
    for (name, path) in &packs {
        writeln!(
            src,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("packs.rs");
    std::fs::write(out, src)?;
    Ok(())
}
