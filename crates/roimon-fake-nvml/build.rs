//! Compiles `fake_nvml.c` into `$OUT_DIR/libnvidia-ml.so.1` with the system C
//! compiler (`$CC`, else `gcc`) and exports its path as `FAKE_NVML_LIB`, so the
//! library crate can hand tests a loadable fake NVML without a `cc` dependency.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=fake_nvml.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source = manifest_dir.join("fake_nvml.c");
    let output = out_dir.join("libnvidia-ml.so.1");
    let cc = env::var("CC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "gcc".to_owned());

    // $CC may carry flags ("ccache gcc", "gcc -m64"): first word is the program.
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("gcc");
    let status = Command::new(program)
        .args(words)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-pthread", "-o",
        ])
        .arg(&output)
        .arg(&source)
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("cannot run C compiler `{cc}` to build the fake NVML: {e}"));
    assert!(
        status.success(),
        "`{cc}` failed to build {} ({status})",
        source.display()
    );

    println!("cargo:rustc-env=FAKE_NVML_LIB={}", output.display());
}
