//! Naming a committed checkpoint the way a user would: `latest`, a step, or a prefix.

use super::{CheckpointStore, LATEST};
use crate::error::{Error, Result};

impl CheckpointStore {
    /// The committed checkpoint a user names: `latest`, a checkpoint's full prefix, its step
    /// (`1500`), or the start of one prefix (`step-0000001500`). A name that matches none, or
    /// more than one, is refused, naming the store and the committed checkpoints there.
    pub async fn resolve(&self, name: &str) -> Result<String> {
        if name == LATEST {
            return self
                .latest()
                .await?
                .map(|pointer| pointer.prefix)
                .ok_or_else(|| {
                    Error::checkpoint(self.root.to_string(), "holds no committed checkpoint")
                });
        }
        let committed: Vec<(String, u64)> = self
            .prefixes()
            .await?
            .into_iter()
            .filter(|(_, _, has_manifest)| *has_manifest)
            .map(|(prefix, step, _)| (prefix, step))
            .collect();
        let step: Option<u64> = name.parse().ok();
        let matches: Vec<&String> = match committed.iter().find(|(prefix, _)| prefix == name) {
            Some((exact, _)) => vec![exact],
            None => committed
                .iter()
                .filter(|(prefix, at)| Some(*at) == step || prefix.starts_with(name))
                .map(|(prefix, _)| prefix)
                .collect(),
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            none_or_many => {
                let listed: Vec<&str> = committed.iter().map(|(p, _)| p.as_str()).collect();
                let what = if none_or_many.is_empty() {
                    "matches no committed checkpoint"
                } else {
                    "matches more than one committed checkpoint"
                };
                Err(Error::checkpoint(
                    self.root.to_string(),
                    format!(
                        "`{name}` {what}; committed: {}",
                        if listed.is_empty() {
                            "none".to_string()
                        } else {
                            listed.join(", ")
                        }
                    ),
                ))
            }
        }
    }
}
