//! The prerequisite probes of `scripts/stack` look for exactly what the build and the stack
//! later use. They run here against fake roots: a probe satisfied by the wrong file (the
//! image's `libclang-cpp.so.14` instead of the `libclang.so` bindgen loads) once let CI pass
//! on a machine where the README's first command failed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs the stack runs, all present in the fake root's `/usr/bin`.
const PROGRAMS: &[&str] = &["java", "mvn", "cmake", "c++", "psql", "curl", "node", "npm"];

fn fake_root(files: &[&str]) -> PathBuf {
    let root = std::env::temp_dir().join(tcom_tests::unique("probe-root"));
    for file in files {
        let path = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    root
}

/// The Debian packages `scripts/stack up` would install on a machine like `root`.
fn missing(root: &Path) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
    let output = Command::new("bash")
        .arg(&script)
        .arg("probe")
        .env("TCOM_PROBE_ROOT", root)
        .output()
        .expect("scripts/stack runs");
    assert!(
        output.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn with_programs(extra: &[&'static str]) -> Vec<String> {
    PROGRAMS
        .iter()
        .map(|p| format!("/usr/bin/{p}"))
        .chain(extra.iter().map(|e| (*e).to_owned()))
        .collect()
}

fn root_with(files: &[String]) -> PathBuf {
    fake_root(&files.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_cpp_interface_library_does_not_count_as_libclang() {
    let root = root_with(&with_programs(&["/usr/lib/llvm-14/lib/libclang-cpp.so.14"]));
    assert_eq!(missing(&root), vec!["libclang-dev"]);
}

#[test]
fn the_library_bindgen_loads_satisfies_the_probe() {
    for library in [
        "/usr/lib/llvm-14/lib/libclang.so",
        "/usr/lib/llvm-14/lib/libclang-14.so.1",
        "/usr/lib/x86_64-linux-gnu/libclang-14.so.1",
    ] {
        let root = root_with(&with_programs(&[library]));
        assert_eq!(missing(&root), Vec::<String>::new(), "{library}");
    }
}

#[test]
fn an_empty_machine_needs_every_package() {
    let root = fake_root(&[]);
    assert_eq!(
        missing(&root),
        vec![
            "openjdk-17-jre-headless",
            "maven",
            "libclang-dev",
            "cmake",
            "g++",
            "postgresql-client",
            "curl",
            "nodejs",
            "npm"
        ]
    );
}
