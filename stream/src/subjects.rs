//! The subjects, all under one prefix (`[stream] subject_prefix`, default `obtc`):
//!
//! | subject | carries | from → to | in the stream |
//! |---|---|---|---|
//! | `{p}.batch.{edge_id}` | [`crate::message::BatchMessage`] (binary, versioned) | edge → core | yes |
//! | `{p}.anchor` | the core's ledger head, JSON [`crate::control::AnchorMessage`] | core → edges | no |
//! | `{p}.bans` | the operator's bans, JSON [`crate::control::BanList`] | core → edges | no |
//! | `{p}.stats.{edge_id}` | an edge's live connections, JSON [`crate::control::EdgeStats`] | edge → core | no |

/// The subject names of one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    /// Where edge `edge_id` publishes its batches.
    pub fn batch(&self, edge_id: u16) -> String {
        format!("{}.batch.{edge_id}", self.prefix)
    }

    /// The stream's subject filter: every edge's batches.
    pub fn batches(&self) -> String {
        format!("{}.batch.>", self.prefix)
    }

    pub fn anchor(&self) -> String {
        format!("{}.anchor", self.prefix)
    }

    pub fn bans(&self) -> String {
        format!("{}.bans", self.prefix)
    }

    pub fn stats(&self, edge_id: u16) -> String {
        format!("{}.stats.{edge_id}", self.prefix)
    }

    /// Every edge's statistics (the core's subscription).
    pub fn all_stats(&self) -> String {
        format!("{}.stats.*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_share_the_prefix() {
        let s = Subjects::new("obtc");
        assert_eq!(s.batch(7), "obtc.batch.7");
        assert_eq!(s.batches(), "obtc.batch.>");
        assert_eq!(s.anchor(), "obtc.anchor");
        assert_eq!(s.bans(), "obtc.bans");
        assert_eq!(s.stats(2), "obtc.stats.2");
        assert_eq!(s.all_stats(), "obtc.stats.*");
    }
}
