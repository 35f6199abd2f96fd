//! Group commit of a run's finished units. A unit that finishes while another group is being
//! committed waits for the write to be free, and then the first of the waiting units commits
//! everything that finished meanwhile, its own and the others', in one transaction. A unit counts
//! as finished (memoized, staged, shown in the progress) only once its group has committed, so a
//! killed process still loses no finished unit; what the grouping saves is a transaction per unit.
use std::sync::Mutex;
use tokio::sync::oneshot;

use super::{Halt, UnitJob};
use crate::pipeline::Engine;
use crate::storage::FinishedUnit;

type Waiter = oneshot::Sender<Result<(), Halt>>;

#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<(FinishedUnit, Waiter)>>,
    /// Held while a group commits: one group at a time, in order (tokio's mutex is fair).
    writer: tokio::sync::Mutex<()>,
}

impl GroupCommit {
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
        self.commit_pending(engine, job).await;
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
        let done = engine.write_group(job, units).await.map_err(Halt::storage);
        for waiter in waiters {
            let _ = waiter.send(done.clone());
        }
    }
}
