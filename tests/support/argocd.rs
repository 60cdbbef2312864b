//! Argo CD's health assessment of our kinds, as docs/gitops.md tells users to configure it:
//! the Lua script of that page, run by a real Lua 5.1 interpreter (Argo CD runs gopher-lua, a
//! Lua 5.1) on an object as the API server stores it, given as the global `obj`.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The interpreter; scripts/test.sh installs Debian's `lua5.1`.
const LUA: &str = "lua5.1";

/// The health check that docs/gitops.md gives for `kind` (`ApiTokenPolicy`): the block of
/// `resource.customizations.health.tokenwarden.dev_<kind>` or, where the page says "the same
/// for" that kind, the ApiTokenPolicy's.
pub fn health_script() -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gitops.md");
    let text = std::fs::read_to_string(&page).expect("docs/gitops.md");
    let key = "resource.customizations.health.tokenwarden.dev_ApiTokenPolicy: |";
    let start = text
        .find(key)
        .expect("docs/gitops.md has the Argo CD health check")
        + key.len();
    let lines: Vec<&str> = text[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with("```"))
        .collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("a script");
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `object` as a Lua table constructor.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Argo CD's verdict on `object`: (`hs.status`, `hs.message`).
pub fn health(object: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal function check()\n{}\nend\nlocal hs = check()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua(object),
        health_script()
    );
    let output = Command::new(LUA)
        .args(["-e", &program])
        .output()
        .unwrap_or_else(|e| panic!("running {LUA} (scripts/test.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "{LUA} failed: {}\n{program}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}
