//! Group commit: the tasks send their checkpoint writes to one writer, which commits whatever
//! is queued in one transaction and then answers each task. Hand-written here (a queue and a
//! loop); the writer's statements are the contender's.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::Result;
use crate::schema::next_step;

/// One task's checkpoint: the step row to upsert and the run row to bump.
pub(crate) struct Write {
    pub(crate) run: String,
    pub(crate) step: String,
    pub(crate) output: String,
}

struct Job {
    write: Write,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Commits one batch in one transaction.
pub(crate) trait BatchWriter {
    fn commit(&mut self, batch: &[Write]) -> impl Future<Output = Result<()>>;
}

/// What one group-commit run did.
pub(crate) struct GroupRun {
    pub(crate) commits: u64,
    pub(crate) batches: u64,
    pub(crate) elapsed: Duration,
}

/// `tasks` tasks, each sending a checkpoint and waiting for its commit, again and again for
/// `length`; the writer runs on the calling task.
pub(crate) async fn run<W: BatchWriter>(
    writer: &mut W,
    tasks: usize,
    length: Duration,
) -> Result<GroupRun> {
    let (sender, mut queue) = mpsc::channel::<Job>(tasks * 2);
    let start = Instant::now();
    let deadline = start + length;
    let workers: Vec<_> = (0..tasks)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move {
                let run = format!("c{i}");
                let mut commits = 0_u64;
                while Instant::now() < deadline {
                    let (step, output) = next_step();
                    let (done, answer) = oneshot::channel();
                    let write = Write {
                        run: run.clone(),
                        step,
                        output,
                    };
                    if sender.send(Job { write, done }).await.is_err() {
                        return Err(format!("task {i}: the writer stopped"));
                    }
                    match answer.await {
                        Ok(Ok(())) => commits += 1,
                        Ok(Err(error)) => return Err(error),
                        Err(_) => return Err(format!("task {i}: the writer dropped its answer")),
                    }
                }
                Ok(commits)
            })
        })
        .collect();
    drop(sender);

    let mut batches = 0_u64;
    let mut failure = None;
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while let Ok(job) = queue.try_recv() {
            jobs.push(job);
        }
        let (writes, answers): (Vec<Write>, Vec<_>) =
            jobs.into_iter().map(|j| (j.write, j.done)).unzip();
        let outcome = writer.commit(&writes).await.map_err(|e| e.to_string());
        batches += 1;
        for answer in answers {
            // A task that is gone no longer needs its answer.
            let _ = answer.send(outcome.clone());
        }
        if let Err(error) = outcome {
            failure = Some(error);
            queue.close();
        }
    }
    let elapsed = start.elapsed();
    let mut commits = 0;
    for worker in workers {
        commits += worker.await?.map_err(|e| failure.clone().unwrap_or(e))?;
    }
    Ok(GroupRun {
        commits,
        batches,
        elapsed,
    })
}
