//! Where the control plane's binaries come from: `TOKENWARDEN_TEST_TOOLS`, else what
//! `scripts/test-tools.sh` builds or finds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tools folder: `TOKENWARDEN_TEST_TOOLS`, else the last line `scripts/test-tools.sh` prints.
pub fn dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("TOKENWARDEN_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-tools.sh");
            eprintln!(
                "TOKENWARDEN_TEST_TOOLS is not set; running {}",
                script.display()
            );
            let output = Command::new("bash")
                .arg(&script)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "{} failed ({}); its message is above. Fix that, or set \
                     TOKENWARDEN_TEST_TOOLS to a folder with kube-apiserver, etcd, kubectl, helm, \
                     kstatus, promtool and jaeger.",
                    script.display(),
                    output.status
                ));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
        }
    };
    for tool in [
        "kube-apiserver",
        "etcd",
        "kubectl",
        "helm",
        "kstatus",
        "promtool",
        "jaeger",
    ] {
        if !dir.join(tool).is_file() {
            return Err(format!(
                "{tool} is missing from the tools folder {}; run scripts/test-tools.sh",
                dir.display()
            ));
        }
    }
    Ok(dir)
}
