//! The single writer of the embedded store, with group commit.
//!
//! Owns: the one thread that runs write transactions. Callers send it jobs (closures over a
//! `WriteTransaction`); it takes every job waiting in the queue (up to [`MAX_BATCH`]), runs them
//! one after the other in one transaction, commits once with redb's default durability (an
//! fsync), and only then answers each caller. Jobs of one batch see each other's writes in
//! order, exactly as if each had its own transaction; the fsync is shared. That is what lets a
//! disk that syncs a few hundred times a second carry thousands of refreshes a second.
//!
//! If a job fails, the batch is aborted and each of its jobs is run again alone, so one bad job
//! only fails itself. If the commit fails, every job of the batch fails: nothing was stored, and
//! no caller is told otherwise. Must not touch the schema or the records: that is the jobs'.

use redb::{Database, WriteTransaction};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// Most jobs in one transaction: bounds the latency a batch adds to its first job.
pub(super) const MAX_BATCH: usize = 512;

/// A write that may be run more than once (again alone if its batch fails).
pub(super) trait Job: Send {
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError>;
    /// Called once the transaction that ran `apply` last is committed.
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

struct Pending<T, F> {
    work: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError> {
        self.result = Some((self.work)(tx)?);
        Ok(())
    }

    fn succeed(mut self: Box<Self>) {
        let answer = self
            .result
            .take()
            .ok_or_else(|| StoreError::Unavailable("a committed job had no result".into()));
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Handle to the writer thread. Dropping it lets the thread finish the queue and exit.
pub(super) struct Writer {
    queue: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>) -> Result<Self, StoreError> {
        let (queue, jobs) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &jobs))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Runs `work` in a write transaction and returns its result once that is committed.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            reply,
        });
        self.queue
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // A panicked writer has nothing left to flush; the database file is consistent.
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, jobs: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_batch(db, batch);
    }
}

fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>) {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, &e.to_string()),
    };
    if batch.iter_mut().all(|job| job.apply(&tx).is_ok()) {
        match tx.commit() {
            Ok(()) => batch.into_iter().for_each(|job| job.succeed()),
            Err(e) => fail_all(batch, &e.to_string()),
        }
        return;
    }
    // `all` stops at the failing job: run every job alone so only that one fails.
    let _ = tx.abort();
    for job in batch {
        commit_alone(db, job);
    }
}

fn commit_alone(db: &Database, mut job: Box<dyn Job>) {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => return job.fail(StoreError::Unavailable(e.to_string().into())),
    };
    if let Err(e) = job.apply(&tx) {
        let _ = tx.abort();
        return job.fail(e);
    }
    match tx.commit() {
        Ok(()) => job.succeed(),
        Err(e) => job.fail(StoreError::Unavailable(e.to_string().into())),
    }
}

fn fail_all(batch: Vec<Box<dyn Job>>, reason: &str) {
    for job in batch {
        job.fail(StoreError::Unavailable(reason.to_owned().into()));
    }
}
