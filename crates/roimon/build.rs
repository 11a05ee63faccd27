//! Links release builds of the daemon with packed relative relocations (DT_RELR), which keeps the relocation table (1.2 MiB) out of its resident memory; BENCHMARKS.md, "Peak RSS".
//!
//! The binary then needs glibc 2.36 or newer where it runs (the loader
//! refuses it with "version `GLIBC_ABI_DT_RELR' not found" on older ones).
//! Packing is done only for release builds for Linux with glibc, only when the
//! glibc of the build machine has it (a binary built on an older system runs
//! there), and not when `ROIMON_NO_PACKED_RELOCS=1` is set: for a binary built
//! here and copied to an older system.

use std::env;
use std::process::Command;

/// The first glibc whose loader applies DT_RELR.
const MIN_GLIBC: (u32, u32) = (2, 36);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROIMON_NO_PACKED_RELOCS");
    if pack_relative_relocs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn pack_relative_relocs() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    let opted_out = !matches!(var("ROIMON_NO_PACKED_RELOCS").as_str(), "" | "0");
    if opted_out || var("PROFILE") != "release" {
        return false;
    }
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    // A cross build links against a glibc this script cannot ask.
    if var("HOST") != var("TARGET") {
        return false;
    }
    host_glibc().is_some_and(|version| version >= MIN_GLIBC)
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION`
/// ("glibc 2.36").
fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
