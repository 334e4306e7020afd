//! The executing side of a connection: requests taken in order from the reader thread, each
//! answered in that order — through the backend's tickets when it pipelines, a run of puts
//! spread over a few threads when it does not, and one at a time, with fault injection, when
//! faults are set up (see [`Executor`]).

use super::{execute, Budget, Incoming};
use crate::answers::{Answer, Answers, SharedOut};
use crate::backend::Backend;
use crate::error::{ErrorCode, Result};
use crate::fault::{kill_self, Fault, FaultAction};
use crate::message::{Request, Response};
use std::io::Write;
use std::sync::mpsc;

/// Executes every request of the connection (see [`Executor`]). Returns how the connection
/// ended, and whether the reader had handed over its last item by then.
pub(super) fn execute_all<B, W>(
    backend: &B,
    incoming: &mpsc::Receiver<Vec<Incoming>>,
    budget: &Budget,
    out: &SharedOut<W>,
    fault: Option<Fault>,
) -> (Result<()>, bool)
where
    B: Backend + ?Sized,
    W: Write + Send + 'static,
{
    let pipelined = fault.is_none() && backend.pipelines();
    let answers = if pipelined {
        match Answers::start(out.clone()) {
            Ok(a) => a,
            Err(e) => return (Err(e), false),
        }
    } else {
        Answers::inline(out.clone())
    };
    let mut executor = Executor {
        backend,
        budget,
        pipelined: answers.threaded(),
        answers,
        fault,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        reader_ended: false,
    };
    let r = executor.run(incoming);
    let finished = executor.answers.finish();
    (r.and(finished), executor.reader_ended)
}

/// Whether the connection goes on after an item has been dealt with.
enum Flow {
    /// On to the next request.
    Go,
    /// The connection is over (a close answered, or the end of input).
    Stop,
}

/// The executing side of one connection: it takes the requests the reader hands over, in order,
/// and has each answered in that order.
///
/// A backend that pipelines gets puts, gets and exists through its tickets, so many are in
/// flight at once; everything else waits for the answers before it (PROTOCOL.md, section 5).
/// With fault injection configured everything runs one at a time, so faults fire at exact
/// points; otherwise a run of puts already received is spread over a few threads.
struct Executor<'a, B: ?Sized> {
    backend: &'a B,
    budget: &'a Budget,
    answers: Answers,
    fault: Option<Fault>,
    /// Whether requests are answered through the backend's tickets (see above).
    pipelined: bool,
    /// Threads a run of puts may be spread over.
    workers: usize,
    /// Set once the reader has handed over its last item (a close, the end of input, or a
    /// broken stream): it is then about to exit.
    reader_ended: bool,
}

impl<B: Backend + ?Sized> Executor<'_, B> {
    /// Executes requests until the connection ends.
    fn run(&mut self, incoming: &mpsc::Receiver<Vec<Incoming>>) -> Result<()> {
        let mut batch = Vec::new().into_iter().peekable();
        loop {
            let run = self.put_run(&mut batch);
            if !run.is_empty() {
                self.answer_put_run(run)?;
                continue;
            }
            let Some(item) = batch.next() else {
                batch = self.next_batch(incoming)?.into_iter().peekable();
                continue;
            };
            if let Flow::Stop = self.take(item)? {
                return Ok(());
            }
        }
    }

    /// The next batch of requests from the reader. Answers are flushed whenever no request is
    /// waiting: never wait for input while holding answers back (the client may need them
    /// before it sends more).
    fn next_batch(&mut self, incoming: &mpsc::Receiver<Vec<Incoming>>) -> Result<Vec<Incoming>> {
        let next = match incoming.try_recv() {
            Ok(b) => Ok(b),
            Err(_) => {
                self.answers.flush()?;
                incoming.recv()
            }
        };
        Ok(next.unwrap_or_else(|_| vec![Incoming::End]))
    }

    /// The puts at the head of `batch`, when they may run on several threads at once (answers
    /// still go out in order). Puts are independent and idempotent, and every other request
    /// waits until the run is done, so no client can tell — except by speed.
    fn put_run(
        &self,
        batch: &mut std::iter::Peekable<std::vec::IntoIter<Incoming>>,
    ) -> Vec<(Request, usize)> {
        let mut run = Vec::new();
        if self.fault.is_some() || self.pipelined || self.workers <= 1 {
            return run;
        }
        while let Some(Incoming::Request(Ok(Request::Put { .. }), _)) = batch.peek() {
            if let Some(Incoming::Request(Ok(r), size)) = batch.next() {
                run.push((r, size));
            }
        }
        run
    }

    fn answer_put_run(&mut self, run: Vec<(Request, usize)>) -> Result<()> {
        for (answer, size) in execute_run(self.backend, run, self.workers) {
            self.budget.give(size);
            self.answers.answer(Answer::Now(answer))?;
        }
        Ok(())
    }

    /// Deals with one item from the reader: a request, or how the input ended.
    fn take(&mut self, item: Incoming) -> Result<Flow> {
        let (request, size) = match item {
            Incoming::Request(r, size) => (r, size),
            Incoming::End => {
                // End of input without a close: keep what was acknowledged if we can.
                self.reader_ended = true;
                self.answers.barrier()?;
                let _ = self.backend.flush();
                return Ok(Flow::Stop);
            }
            Incoming::Broken(e) => {
                self.reader_ended = true;
                // The frame boundary is lost, so no answer can be matched to a request: say
                // why once and stop.
                self.answers.barrier()?;
                let _ = self.answers.answer(Answer::Now(Response::error(&e)));
                let _ = self.backend.flush();
                return Err(e);
            }
        };
        match request {
            Err(e) => {
                self.budget.give(size);
                self.answers.answer(Answer::Now(Response::error(&e)))?;
                Ok(Flow::Go)
            }
            Ok(Request::Close) => self.close(size),
            Ok(r) if self.pipelined => self.answer_pipelined(r, size),
            Ok(r) => self.answer_in_turn(r, size),
        }
    }

    /// Answers a request of a pipelining backend: puts, gets and exists through its tickets,
    /// anything else once every answer before it is out.
    fn answer_pipelined(&mut self, request: Request, size: usize) -> Result<Flow> {
        let backend = self.backend;
        let answer = match request {
            Request::Put { key, data } => Answer::of(
                backend
                    .start_put(key, data.into_vec())
                    .map(|()| Response::Ok),
            ),
            Request::Get(key) => Answer::of(backend.start_get(key).map(|d| match d {
                Some(d) => Response::Data(d),
                None => Response::Missing,
            })),
            Request::Exists(keys) => Answer::of(backend.start_exists(keys).map(Response::Presence)),
            other => {
                // Everything answered so far goes out before a request that may take long (a
                // tag read in an object store is a round trip): a client waiting on an earlier
                // answer, such as the round trip that decides its lanes, must not wait for
                // this one too. Measured: a backend-s3 a 40 ms round trip from its store answered the
                // first `exists` 170 ms late, behind the tag reads queued after it, and the
                // client opened three needless processes.
                self.answers.barrier()?;
                self.answers.flush()?;
                Answer::Now(execute(backend, other))
            }
        };
        self.budget.give(size);
        self.answers.answer(answer)?;
        Ok(Flow::Go)
    }

    /// What fault injection asks of the request named `op` (proceed, when none is set up).
    fn fault_action(&mut self, op: &str) -> FaultAction {
        match self.fault.as_mut() {
            Some(f) => f.on_operation(op),
            None => FaultAction::Proceed,
        }
    }

    /// Answers a request once the one before it has been answered, with the fault injection
    /// that is set up.
    fn answer_in_turn(&mut self, request: Request, size: usize) -> Result<Flow> {
        let answer = match self.fault_action(request.op_name()) {
            FaultAction::KillBefore => kill_self(),
            FaultAction::Fail => injected(&request),
            FaultAction::Proceed => execute(self.backend, request),
            FaultAction::KillAfter => {
                let _ = execute(self.backend, request);
                kill_self()
            }
        };
        self.budget.give(size);
        self.answers.answer(Answer::Now(answer))?;
        Ok(Flow::Go)
    }

    /// Answers a close: everything before it is answered, the backend flushed, and a goodbye
    /// (or why the flush failed) is the last answer; nothing after a close is read. A close
    /// failed by fault injection is answered with that failure, and the end of input follows.
    fn close(&mut self, size: usize) -> Result<Flow> {
        let action = if self.pipelined {
            FaultAction::Proceed
        } else {
            self.fault_action(Request::Close.op_name())
        };
        match action {
            FaultAction::KillBefore => kill_self(),
            FaultAction::Fail => {
                self.budget.give(size);
                self.answers
                    .answer(Answer::Now(injected(&Request::Close)))?;
                return Ok(Flow::Go);
            }
            FaultAction::Proceed | FaultAction::KillAfter => {}
        }
        self.reader_ended = true;
        if self.pipelined {
            self.answers.barrier()?;
        }
        let flushed = self.backend.flush();
        if action == FaultAction::KillAfter {
            kill_self();
        }
        let answer = match flushed {
            Ok(()) => Response::Goodbye,
            Err(e) => Response::error(&e),
        };
        self.answers.answer(Answer::Now(answer))?;
        Ok(Flow::Stop)
    }
}

/// The answer to a request failed by fault injection.
fn injected(request: &Request) -> Response {
    Response::Error {
        code: ErrorCode::Injected,
        message: format!("injected fault on {}", request.op_name()),
    }
}

/// Shortest run of puts worth spreading over threads.
const PARALLEL_RUN: usize = 16;

/// Executes a run of requests (puts), in parallel when it is long enough; the answers come
/// back in the order of the requests.
fn execute_run<B: Backend + ?Sized>(
    backend: &B,
    run: Vec<(Request, usize)>,
    workers: usize,
) -> Vec<(Response, usize)> {
    if run.len() < PARALLEL_RUN {
        return run
            .into_iter()
            .map(|(r, size)| (execute(backend, r), size))
            .collect();
    }
    let per = run.len().div_ceil(workers);
    let mut groups: Vec<Vec<(Request, usize)>> = Vec::new();
    let mut it = run.into_iter();
    loop {
        let g: Vec<_> = it.by_ref().take(per).collect();
        if g.is_empty() {
            break;
        }
        groups.push(g);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let sizes: Vec<usize> = g.iter().map(|(_, size)| *size).collect();
                let h = s.spawn(move || {
                    g.into_iter()
                        .map(|(r, size)| (execute(backend, r), size))
                        .collect::<Vec<_>>()
                });
                (h, sizes)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(h, sizes)| {
                // A panic inside the backend must still leave one answer per request.
                h.join().unwrap_or_else(|_| {
                    sizes
                        .into_iter()
                        .map(|size| {
                            let answer = Response::Error {
                                code: ErrorCode::Internal,
                                message: "the backend failed while storing a block".into(),
                            };
                            (answer, size)
                        })
                        .collect()
                })
            })
            .collect()
    })
}
