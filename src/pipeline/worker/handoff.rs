//! A command that queues a run hands it to a worker loop of this process that is waiting for
//! work: the run is claimed, planned and started in the command's own transaction (the claim a
//! checkpoint's commit makes for its worker, `claim_next`, in the same fair order), and the
//! waiting loop takes it from a channel instead of waking up and claiming it in a transaction of
//! its own. A retry's path from the click to its first provider call loses a claim's call and a
//! commit.
//!
//! A loop parks (`Parked::park`) when it finds nothing to claim; a command sets one aside
//! before its transaction (`Engine::reserve_worker`), so no other command takes it, and after
//! its commit gives it the run (`Engine::hand_over`). A reservation dropped without a run (the
//! command failed, queued nothing, or the claim found another run first and failed) lets the
//! loop go on as before; a loop that woke for another reason meanwhile waits for the command's
//! answer, which is at most one transaction away. With no loop parked (a web-only process, or
//! every loop busy), and on PostgreSQL (`Engine::reserve_worker` says why), the run stays
//! queued and the loops are woken as before.
use std::sync::Mutex;
use tokio::sync::oneshot;

use super::{Claimed, claim_next};
use crate::domain::{RunId, Timestamp};
use crate::pipeline::{CoreError, Engine};
use crate::storage::WriteTx;

/// The worker loops of this process waiting for work, each with the channel it takes a claimed
/// run from, under a number of its own (two loops of one name, as tests run, stay apart).
#[derive(Default)]
pub struct Parked(Mutex<Waiting>);

#[derive(Default)]
struct Waiting {
    next: u64,
    loops: Vec<(u64, String, oneshot::Sender<Claimed>)>,
}

/// A waiting worker loop set aside for one command.
pub struct Reserved {
    owner: String,
    hand: oneshot::Sender<Claimed>,
}

impl Reserved {
    /// The loop's worker name, which its claim's lease carries.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `owner` waits for work; a command's run arrives on the receiver. The number is this
    /// wait's, for `unpark`.
    pub(super) fn park(&self, owner: &str) -> (u64, oneshot::Receiver<Claimed>) {
        let (hand, take) = oneshot::channel();
        let mut waiting = self.lock();
        let id = waiting.next;
        waiting.next += 1;
        waiting.loops.push((id, owner.to_string(), hand));
        (id, take)
    }

    /// Whether the wait `id` was still parked (and now is not); false when a command reserved it
    /// and its answer is on the way.
    pub(super) fn unpark(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        let before = waiting.loops.len();
        waiting.loops.retain(|(i, ..)| *i != id);
        waiting.loops.len() != before
    }

    fn reserve(&self) -> Option<Reserved> {
        let mut waiting = self.lock();
        // A loop whose task ended dropped its receiver: skip it.
        while let Some((_, owner, hand)) = waiting.loops.pop() {
            if !hand.is_closed() {
                return Some(Reserved { owner, hand });
            }
        }
        None
    }
}

impl Engine {
    /// How many of this process's worker loops are waiting for work.
    pub fn waiting_workers(&self) -> usize {
        self.parked.lock().loops.iter().filter(|(_, _, hand)| !hand.is_closed()).count()
    }

    /// A worker loop of this process waiting for work, set aside for a command that may queue a
    /// run; `None` when every loop is busy or this process runs none, and on PostgreSQL: there a
    /// command's claim would take the turn of whichever account the fair order picks while the
    /// command may hold its own account's row (its quota check), and a checkpoint's claim doing
    /// the opposite would deadlock with it; SQLite runs one write transaction at a time.
    pub(crate) fn reserve_worker(&self) -> Option<Reserved> {
        if self.store.backend() != crate::storage::Backend::Sqlite {
            return None;
        }
        self.parked.reserve()
    }

    /// In the transaction of a command that queued a run: claims the next claimable run for the
    /// reserved loop (`owner`) (usually the one just queued), plans it and starts its progress, under a
    /// savepoint, so a claim that fails leaves the command's own writes to commit.
    pub(crate) async fn claim_for(&self, tx: &mut WriteTx, owner: &str, now: Timestamp) -> Result<Option<Claimed>, CoreError> {
        claim_next(self, tx, owner, now, None).await
    }

    /// After the command's commit: gives the loop its run (none: the loop goes on as before),
    /// and wakes the other loops unless the run the command queued is the one handed over.
    pub(crate) async fn hand_over(&self, reserved: Option<Reserved>, claimed: Option<Claimed>, queued: Option<RunId>) {
        let handed = match (reserved, claimed) {
            (Some(reserved), Some(claimed)) => {
                let run = claimed.run.id;
                self.events.changed(claimed.run.video_id);
                match reserved.hand.send(claimed) {
                    Ok(()) => Some(run),
                    Err(claimed) => {
                        self.hand_back_claimed(claimed, "its worker loop stopped").await;
                        None
                    }
                }
            }
            _ => None,
        };
        if queued.is_none() || handed != queued {
            self.events.wake_workers();
        }
    }
}
