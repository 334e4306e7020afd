//! The answering side of `serve`: answers leave in request order from their own thread.
//!
//! A backend that pipelines (a proxy in front of another process) hands `serve` tickets for
//! puts, gets and exists instead of finished answers, so that hundreds of requests can be on
//! their way to the inner backend at once. The executing thread starts each request and queues
//! its answer (finished or not) here; this thread waits for each in turn and writes it. It
//! writes buffered answers out when told that no request is waiting, and before it blocks on an
//! answer that is not there yet, so a client is never kept waiting for answers we hold.

use crate::backend::Ticket;
use crate::error::{Error, Result};
use crate::message::Response;
use ore_util::sync::lock;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

/// An answer in the queue: known, or on its way.
pub(crate) enum Answer {
    Now(Response),
    Later(Ticket<Response>),
}

impl Answer {
    /// The answer for a ticket, finished at once when it already is.
    pub fn of(t: Ticket<Response>) -> Answer {
        match t.try_ready() {
            Ok(r) => Answer::Now(r.unwrap_or_else(|e| Response::error(&e))),
            Err(t) => Answer::Later(t),
        }
    }
}

enum Item {
    Answer(Answer),
    /// No request is waiting: write out what is buffered.
    Flush,
    /// Tell the sender once every answer queued before this one is written.
    Barrier(mpsc::SyncSender<()>),
}

/// Most answers queued and not yet written; the executing thread waits beyond it.
const DEPTH: usize = 4096;

pub(crate) type SharedOut<W> = Arc<Mutex<std::io::BufWriter<W>>>;

/// Writes an answer (and flushes when asked).
pub(crate) fn send<W: Write>(out: &SharedOut<W>, r: &Response, flush: bool) -> Result<()> {
    let mut w = lock(out);
    r.write_to(&mut *w)
        .and_then(|()| if flush { w.flush() } else { Ok(()) })
        .map_err(|e| Error::io("writing an answer to the client", e))
}

fn flush<W: Write>(out: &SharedOut<W>) -> Result<()> {
    lock(out)
        .flush()
        .map_err(|e| Error::io("writing answers to the client", e))
}

/// Writes an answer (`Some`) or flushes (`None`) straight to the output.
type Direct = Box<dyn FnMut(Option<&Response>) -> Result<()> + Send>;

/// The queue of answers and the thread that writes them — or, for a backend that answers at
/// once, the output itself (a thread would only add a hand-over per answer).
pub(crate) struct Answers {
    direct: Option<Direct>,
    tx: Option<mpsc::SyncSender<Item>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// Whether an unfinished answer was queued since the last barrier.
    unfinished: bool,
}

impl Answers {
    pub fn start<W: Write + Send + 'static>(out: SharedOut<W>) -> Result<Answers> {
        let (tx, rx) = mpsc::sync_channel::<Item>(DEPTH);
        let thread = std::thread::Builder::new()
            .name("ore serve answers".into())
            .spawn(move || {
                for item in rx {
                    match item {
                        Item::Answer(Answer::Now(r)) => send(&out, &r, false)?,
                        Item::Answer(Answer::Later(t)) => {
                            let r = match t.try_ready() {
                                Ok(r) => r,
                                Err(t) => {
                                    flush(&out)?;
                                    t.wait()
                                }
                            };
                            send(&out, &r.unwrap_or_else(|e| Response::error(&e)), false)?;
                        }
                        Item::Flush => flush(&out)?,
                        Item::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                flush(&out)
            })
            .map_err(|e| Error::io("starting the answer thread", e))?;
        Ok(Answers {
            direct: None,
            tx: Some(tx),
            thread: Some(thread),
            unfinished: false,
        })
    }

    /// Answers written by the executing thread itself; only finished answers may be given.
    pub fn inline<W: Write + Send + 'static>(out: SharedOut<W>) -> Answers {
        Answers {
            direct: Some(Box::new(move |r| match r {
                Some(r) => send(&out, r, false),
                None => flush(&out),
            })),
            tx: None,
            thread: None,
            unfinished: false,
        }
    }

    /// Whether answers may be unfinished tickets (written by their own thread).
    pub fn threaded(&self) -> bool {
        self.direct.is_none()
    }

    fn push(&mut self, item: Item) -> Result<()> {
        if let Some(direct) = self.direct.as_mut() {
            return match item {
                Item::Answer(Answer::Now(r)) => direct(Some(&r)),
                Item::Answer(Answer::Later(t)) => {
                    direct(Some(&t.wait().unwrap_or_else(|e| Response::error(&e))))
                }
                Item::Flush => direct(None),
                Item::Barrier(done) => {
                    let _ = done.send(());
                    Ok(())
                }
            };
        }
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(item).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread ended: writing failed. Its error says why.
            Err(self
                .finish()
                .err()
                .unwrap_or_else(|| Error::Protocol("the answer thread ended early".into())))
        }
    }

    /// Queues an answer.
    pub fn answer(&mut self, a: Answer) -> Result<()> {
        self.unfinished |= matches!(a, Answer::Later(_));
        self.push(Item::Answer(a))
    }

    /// Asks for buffered answers to be written.
    pub fn flush(&mut self) -> Result<()> {
        self.push(Item::Flush)
    }

    /// Waits until every answer queued so far is written (at once when all were finished,
    /// since those cannot fail or reorder anything).
    pub fn barrier(&mut self) -> Result<()> {
        if !self.unfinished {
            return Ok(());
        }
        let (done, wait) = mpsc::sync_channel(1);
        self.push(Item::Barrier(done))?;
        self.unfinished = false;
        match wait.recv() {
            Ok(()) => Ok(()),
            Err(_) => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| Error::Protocol("the answer thread ended early".into()))),
        }
    }

    /// Writes everything queued and stops the thread.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(mut direct) = self.direct.take() {
            return direct(None);
        }
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::Protocol("the answer thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
