//! The admission cases in `tests/cases/{valid,invalid}`: one object per file. An invalid case
//! names, in its first line `# rejected at: FIELD`, the field the rejection must name.

use std::path::{Path, PathBuf};

pub struct Case {
    pub name: String,
    pub path: PathBuf,
    /// The field the rejection names (invalid cases only).
    pub field: String,
}

fn read(dir: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable case");
            let field = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# rejected at: "))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let name = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            Case { name, path, field }
        })
        .collect()
}

#[allow(dead_code)]
pub fn valid() -> Vec<Case> {
    read("valid")
}

#[allow(dead_code)]
pub fn invalid() -> Vec<Case> {
    let cases = read("invalid");
    for case in &cases {
        assert!(
            !case.field.is_empty(),
            "{} lacks its '# rejected at:' line",
            case.name
        );
    }
    cases
}
