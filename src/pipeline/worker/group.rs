//! Group commit of a run's finished units. A unit that finishes while another group is being
//! committed waits for the write to be free, and then the first of the waiting units commits
//! everything that finished meanwhile, its own and the others', in one transaction. A unit counts
//! as finished (memoized, its try recorded, shown in the progress) only once its group has
//! committed; what the grouping saves is a transaction per unit.
//!
//! The last unit to finish making its output has no group to wait for: its record is deferred to
//! the run's next transaction, the checkpoint's on success (`take_deferred`), so a run commits one
//! group fewer and the unit still counts only once that transaction has committed. So are the
//! records still waiting for a group when every unit has made its output (a phase whose units
//! all finished at once): that transaction is then a moment away, and a run that fails or stops,
//! or whose checkpoint does not commit, writes them in a group of their own, as it does the last
//! unit's. What a killed process, a cancel or a lost lease can lose in that moment is those
//! records (their bytes are stored; a resumed run makes them again), as the last unit's before.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::oneshot;

use super::{Halt, UnitJob};
use crate::pipeline::Engine;
use crate::storage::FinishedUnit;

type Waiter = oneshot::Sender<Result<(), Halt>>;

pub(super) struct GroupCommit {
    pending: Mutex<Vec<(FinishedUnit, Waiter)>>,
    /// Held while a group commits: one group at a time, in order (tokio's mutex is fair).
    writer: tokio::sync::Mutex<()>,
    /// Units still making their output.
    making: AtomicU32,
    /// Records left to the run's next transaction: the last unit's, and those still waiting for
    /// a group when every unit had made its output.
    deferred: Mutex<Vec<FinishedUnit>>,
}

impl GroupCommit {
    pub(super) fn new(units: u32) -> GroupCommit {
        GroupCommit {
            pending: Mutex::default(),
            writer: tokio::sync::Mutex::default(),
            making: AtomicU32::new(units),
            deferred: Mutex::default(),
        }
    }

    /// Called once by each unit that made (or failed to make) its output: true for the last one.
    /// Units that never start (the run yields) never call it, and then no unit is last.
    pub(super) fn made_one(&self) -> bool {
        self.making.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Leaves a record to the run's next transaction.
    pub(super) fn defer(&self, unit: FinishedUnit) {
        self.deferred.lock().expect("deferred units").push(unit);
    }

    /// The deferred records, for the transaction that ends the run (or a group of their own).
    pub(super) fn take_deferred(&self) -> Vec<FinishedUnit> {
        std::mem::take(&mut *self.deferred.lock().expect("deferred units"))
    }

    /// Queues the unit and returns once the group that carries it has committed.
    pub(super) async fn record(&self, engine: &Engine, job: &UnitJob<'_>, unit: FinishedUnit) -> Result<(), Halt> {
        let (tx, mut rx) = oneshot::channel();
        self.pending.lock().expect("pending units").push((unit, tx));
        // Units polled after this one in the same pass (outputs from the memo, instant answers)
        // finish first and join the group, instead of waiting for a second commit.
        tokio::task::yield_now().await;
        let _writer = self.writer.lock().await;
        // An earlier group may have carried it while this unit waited for the writer.
        if let Ok(done) = rx.try_recv() {
            return done;
        }
        if self.making.load(Ordering::Acquire) == 0 {
            let queued = std::mem::take(&mut *self.pending.lock().expect("pending units"));
            let mut deferred = self.deferred.lock().expect("deferred units");
            for (unit, waiter) in queued {
                deferred.push(unit);
                let _ = waiter.send(Ok(()));
            }
        } else {
            self.commit_pending(engine, job).await;
        }
        rx.await.unwrap_or(Err(Halt::Stopped))
    }

    /// Commits whatever is queued now (before the process is made to crash by a fault plan).
    pub(super) async fn flush(&self, engine: &Engine, job: &UnitJob<'_>) {
        let _writer = self.writer.lock().await;
        self.commit_pending(engine, job).await;
    }

    async fn commit_pending(&self, engine: &Engine, job: &UnitJob<'_>) {
        let queued = std::mem::take(&mut *self.pending.lock().expect("pending units"));
        if queued.is_empty() {
            return;
        }
        let (units, waiters): (Vec<FinishedUnit>, Vec<Waiter>) = queued.into_iter().unzip();
        let done = engine.write_group(job, std::sync::Arc::new(units)).await.map_err(Halt::storage);
        for waiter in waiters {
            let _ = waiter.send(done.clone());
        }
    }
}
