//! Where the control plane's binaries come from: `TOKENWARDEN_TEST_TOOLS`, else what
//! `scripts/test-tools.sh` builds or finds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tools folder: `TOKENWARDEN_TEST_TOOLS`, else the last line `scripts/test-tools.sh` prints.
pub fn dir() -> Result<PathBuf, String> {
    folder(
        "TOKENWARDEN_TEST_TOOLS",
        "scripts/test-tools.sh",
        " Fix that, or set TOKENWARDEN_TEST_TOOLS to a folder with kube-apiserver, etcd, kubectl, \
         helm, kstatus, promtool and jaeger.",
        &[
            "kube-apiserver",
            "etcd",
            "kubectl",
            "helm",
            "kstatus",
            "promtool",
            "jaeger",
        ],
    )
}

/// A folder of tools that `script` builds or finds: `variable` when set, else the last line the
/// script prints (its progress goes to stderr). `hint` follows the message when the script
/// fails; every one of `tools` (paths relative to the folder) must be a file there.
pub fn folder(variable: &str, script: &str, hint: &str, tools: &[&str]) -> Result<PathBuf, String> {
    let dir = match std::env::var_os(variable) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
            eprintln!("{variable} is not set; running {}", script.display());
            let output = Command::new("bash")
                .arg(&script)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "{} failed ({}); its message is above.{hint}",
                    script.display(),
                    output.status
                ));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
        }
    };
    for tool in tools {
        if !dir.join(tool).is_file() {
            return Err(format!(
                "{tool} is missing from the tools folder {}; run {script}",
                dir.display()
            ));
        }
    }
    Ok(dir)
}
