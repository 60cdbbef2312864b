//! Standalone mode's configuration source: ApiTokenPolicy, ApiClient and Secret YAML in a
//! folder, admitted as the API server would and reloaded within a second of a change.
//!
//! Every problem is logged with file, document, field and message. A document that fails is
//! not loaded — but, as the API server keeps the stored object when an update is rejected, an
//! object that loaded before from a file that now has problems stays in force with its last
//! good content until the file is fixed or the object is removed from a valid file. An edit
//! the API server would refuse as an update (a changed `audience`, which is immutable) is
//! such a problem too; removing the object and adding it again is allowed, as delete and
//! create are.

use super::snapshot::{ConfigSource, InForce};
use crate::api;
use crate::config;
use crate::manifests::{self, Loaded, Problem};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How often the folder is checked for changes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Follows a folder of manifests.
#[derive(Debug)]
pub struct DirectorySource {
    dir: PathBuf,
    last_good: Loaded,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl DirectorySource {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            last_good: Loaded::default(),
            fingerprint: Vec::new(),
        }
    }

    /// Read the folder now and put what it declares in force.
    pub fn reload(&mut self, in_force: &InForce) {
        self.fingerprint = self.current_fingerprint();
        let mut loaded = manifests::load(std::slice::from_ref(&self.dir));
        refuse_forbidden_updates(&mut loaded, &self.last_good);
        for problem in &loaded.problems {
            tracing::warn!(
                file = %problem.location.file.display(),
                document = problem.location.document,
                object = problem.object.as_deref().unwrap_or(""),
                field = %problem.error.path,
                "not loaded: {}", problem.error.message
            );
        }
        keep_last_good(&mut loaded, &self.last_good);
        let built = config::build(&loaded.declared);
        for verdict in built.verdicts.iter().filter(|v| !v.is_ready()) {
            tracing::warn!(
                kind = verdict.kind.as_str(),
                namespace = %verdict.namespace,
                name = %verdict.name,
                reason = verdict.reason.as_str(),
                "{}", verdict.message
            );
        }
        let revision = in_force.replace(built.config);
        tracing::info!(
            dir = %self.dir.display(),
            revision,
            apis = loaded.declared.policies.len(),
            clients = loaded.declared.clients.len(),
            problems = loaded.problems.len(),
            "configuration loaded"
        );
        loaded.problems.clear();
        self.last_good = loaded;
    }

    fn current_fingerprint(&self) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
        manifests::files(std::slice::from_ref(&self.dir))
            .into_iter()
            .map(|f| {
                let meta = std::fs::metadata(&f).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let len = meta.map(|m| m.len()).unwrap_or(0);
                (f, modified, len)
            })
            .collect()
    }

    /// Whether any file was added, removed or changed since the last reload.
    pub(crate) fn changed(&self) -> bool {
        self.current_fingerprint() != self.fingerprint
    }
}

/// Edits the API server would refuse as updates (such as a new `audience`, which is
/// immutable) are problems: the edited object is left out, and [`keep_last_good`] keeps the
/// version in force. Only while the issuer runs: after a restart every object is new.
fn refuse_forbidden_updates(loaded: &mut Loaded, last_good: &Loaded) {
    let mut refused = Vec::new();
    for (key, location) in &loaded.locations {
        let (Some(old), Some(new)) = (last_good.object(key), loaded.object(key)) else {
            continue;
        };
        if let Err(errors) = api::admit_update(key.0, &new, &old) {
            let object = manifests::object_name(key.0, &key.1, &key.2);
            let problems = errors.into_iter().map(|error| Problem {
                location: location.clone(),
                object: Some(object.clone()),
                error,
            });
            refused.push((key.clone(), problems.collect::<Vec<_>>()));
        }
    }
    for (key, problems) in refused {
        loaded.remove(&key);
        loaded.problems.extend(problems);
    }
}

/// Objects that loaded before from a file that now has problems, and did not load now, stay
/// with their last good content.
fn keep_last_good(loaded: &mut Loaded, last_good: &Loaded) {
    let troubled: BTreeSet<&PathBuf> = loaded.problems.iter().map(|p| &p.location.file).collect();
    let kept: Vec<_> = last_good
        .locations
        .iter()
        .filter(|(key, location)| {
            troubled.contains(&location.file) && !loaded.locations.contains_key(*key)
        })
        .map(|(key, location)| (key.clone(), location.file.clone()))
        .collect();
    let troubled = !troubled.is_empty();
    for (key, file) in kept {
        if loaded.copy_from(last_good, &key) {
            let (kind, namespace, name) = &key;
            tracing::warn!(
                kind = kind.as_str(), namespace = %namespace, name = %name,
                file = %file.display(),
                "keeping the last valid version until the file is fixed"
            );
        }
    }
    // Secrets carry no location; while any file is troubled, none that loaded before is lost.
    if !troubled {
        return;
    }
    if let (Some(now), Some(before)) = (
        loaded.declared.secrets.as_mut(),
        last_good.declared.secrets.as_ref(),
    ) {
        for (key, data) in before {
            now.entry(key.clone()).or_insert_with(|| data.clone());
        }
    }
}

impl ConfigSource for DirectorySource {
    async fn run(mut self, in_force: InForce, shutdown: impl Future<Output = ()> + Send + 'static) {
        if !in_force.is_loaded() {
            self.reload(&in_force);
        }
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            if self.changed() {
                self.reload(&in_force);
            }
        }
    }
}
