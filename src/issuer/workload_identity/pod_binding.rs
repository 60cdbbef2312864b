//! Whether a pod-bound ServiceAccount token is still bound to a pod that exists. The token
//! names its pod (`kubernetes.io.pod`), but only the API server knows whether that pod still
//! exists with that UID: it answers a TokenReview (`authentication.k8s.io/v1`), which checks the
//! signature, the ServiceAccount and the bound object. One review per token at most every
//! [`REVIEW_FOR`], not per request: the answer is cached under the token's SHA-256 (the token
//! itself is never kept). A token of a deleted pod is refused at the latest [`REVIEW_FOR`]
//! after the deletion.
//!
//! Chosen over verifying offline with a watch of every pod: that needs the right to read every
//! pod of the cluster (their specs and environments too) and memory for all of them; a
//! TokenReview needs only `create tokenreviews`, tells nothing but whether a token is valid, and
//! also knows tokens bound to Secrets and Nodes (docs/decisions.md).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a review's answer is used.
pub(crate) const REVIEW_FOR: Duration = Duration::from_secs(15);
/// Most answers kept; beyond, the expired go, and if none has, all.
const MAX_CACHED: usize = 10_000;

/// Asks the API server about pod-bound tokens, and remembers its answers a short while.
pub(crate) struct PodBindings {
    client: kube::Client,
    answers: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
}

impl std::fmt::Debug for PodBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodBindings").finish_non_exhaustive()
    }
}

impl PodBindings {
    pub(crate) fn new(client: kube::Client) -> Self {
        Self {
            client,
            answers: Mutex::default(),
        }
    }

    /// Whether the API server still accepts `token` for `audience` (its pod exists). `Err`
    /// when it cannot be asked now.
    pub(crate) async fn still_bound(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<bool, kube::Error> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cached(&key) {
            return Ok(answer);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: Some(vec![audience.to_owned()]),
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?
            .status
            .and_then(|s| s.authenticated)
            .unwrap_or(false);
        self.remember(key, answer);
        Ok(answer)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(key)
            .filter(|(_, at)| at.elapsed() < REVIEW_FOR)
            .map(|(answer, _)| *answer)
    }

    fn remember(&self, key: [u8; 32], answer: bool) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= MAX_CACHED {
            answers.retain(|_, (_, at)| at.elapsed() < REVIEW_FOR);
            if answers.len() >= MAX_CACHED {
                answers.clear();
            }
        }
        answers.insert(key, (answer, Instant::now()));
    }
}
