//! What a run will cost before it starts: each of its units the memo cannot answer, at its
//! provider's price per unit. The budget check refuses a run whose estimate would take the video
//! past its budget, before it spends anything; the status page shows the estimate by the button.
use uuid::Uuid;

use std::collections::{HashMap, HashSet};

use super::{CoreError, Engine, units};
use crate::domain::video::{Run, RunStart, Video};
use crate::domain::{Phase, RunId, RunKind};
use crate::storage::{self, MemoEntry};
use sqlx::AnyConnection;

/// The memo's answers read so far in one write transaction, by key. A checkpoint's transaction
/// estimates the next phase's run (auto-continue's budget check) and then, when it claims that
/// run, starts it: the start takes the estimate's answers instead of reading the same rows again.
/// Only within one transaction: nothing in it writes memo rows between the two, and on SQLite it
/// holds the write lock (on PostgreSQL a row another worker committed meanwhile is just not
/// reused, and one `gc` deleted meanwhile fails the reuse's blob check, as a row read a moment
/// earlier would).
#[derive(Default)]
pub(crate) struct MemoSeen {
    asked: HashSet<String>,
    found: HashMap<String, MemoEntry>,
}

impl MemoSeen {
    /// The answers for `keys` when every one of them was asked before.
    pub(crate) fn answers(&self, keys: &[String]) -> Option<HashMap<String, MemoEntry>> {
        keys.iter()
            .all(|k| self.asked.contains(k))
            .then(|| keys.iter().filter_map(|k| self.found.get(k).map(|entry| (k.clone(), entry.clone()))).collect())
    }

    fn note(&mut self, keys: Vec<String>, found: HashMap<String, MemoEntry>) {
        self.asked.extend(keys);
        self.found.extend(found);
    }
}

impl Engine {
    /// Fills `state.estimates`; needs each branch's line and the checkpoints its runs' seeds come
    /// from (`storage::newest_beat_checkpoints`), so a page's slice and those will do. The
    /// memo's answers it reads are noted in `seen`, when given.
    pub(crate) async fn add_estimates(
        &self,
        tx: &mut AnyConnection,
        state: &mut Video,
        mut seen: Option<&mut MemoSeen>,
    ) -> Result<(), CoreError> {
        let mut estimates = Vec::with_capacity(state.branches.len());
        for branch in &state.branches {
            let from = branch.head_id;
            let phase = match from.and_then(|id| state.checkpoint(id)) {
                Some(head) => head.phase.next(),
                None => Some(Phase::Script),
            };
            let Some(phase) = phase else { continue };
            let start = RunStart { phase, from, attempt: 1, kind: RunKind::Continue, regenerate: None };
            let micros = self.estimate(tx, state, &Run::queued(RunId(Uuid::nil()), branch, start, 0), seen.as_deref_mut()).await?;
            estimates.push((branch.id, micros));
        }
        state.estimates = estimates;
        Ok(())
    }

    /// The estimated cost of `run`: its units whose output the memo does not hold, at the price
    /// its provider asks per unit. A run whose units cannot be planned yet estimates 0. The memo's
    /// answers it reads are noted in `seen`, when given.
    pub(crate) async fn estimate(
        &self,
        tx: &mut AnyConnection,
        state: &Video,
        run: &Run,
        seen: Option<&mut MemoSeen>,
    ) -> Result<i64, CoreError> {
        let Ok((plans, _)) = units::plan(self, state, run) else { return Ok(0) };
        let (price, voice_price) = (self.providers.unit_price(run.phase), self.providers.narration.unit_price());
        let keys: Vec<String> = plans.iter().map(|p| p.key.clone()).collect();
        let memo = storage::memo_of(tx, &keys).await?;
        let unanswered = plans.iter().filter(|p| !memo.contains_key(&p.key));
        let micros = unanswered.map(|p| if p.is_narration() { voice_price } else { price }).sum();
        if let Some(seen) = seen {
            seen.note(keys, memo);
        }
        Ok(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoSeen;
    use crate::domain::Phase;
    use crate::storage::MemoEntry;
    use std::collections::HashMap;

    fn entry(key: &str) -> MemoEntry {
        MemoEntry { key: key.into(), phase: Phase::Storyboard, provider: "local".into(), output: "{}".into(), cost_micros: 1 }
    }

    #[test]
    fn seen_answers_only_keys_all_asked_and_a_key_not_found_is_an_answer() {
        let mut seen = MemoSeen::default();
        let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(seen.answers(&keys(&["a"])), None, "nothing asked yet");
        seen.note(keys(&["a", "b", "c"]), HashMap::from([("a".into(), entry("a")), ("c".into(), entry("c"))]));
        let answers = seen.answers(&keys(&["c", "b", "a", "a"])).expect("every key was asked");
        assert_eq!(answers, HashMap::from([("a".into(), entry("a")), ("c".into(), entry("c"))]), "b was asked and is not in the memo");
        assert_eq!(seen.answers(&keys(&["a", "d"])), None, "d was never asked: the memo must be read");
    }
}
