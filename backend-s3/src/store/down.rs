//! Reads once the store has stopped answering: fail fast, not one retry schedule per block.
//!
//! Why: every request goes through OpenDAL's retry layer (five tries, backoff up to 5 s), which
//! is right for a store that hiccups. But when the store is gone (the gateway killed, the
//! network down), a restore has hundreds of reads in flight or queued, and each one went through
//! its own schedule of retries before failing: measured on SeaweedFS with the gateway killed
//! mid-restore, 15.3 s and 47 warnings, one per file left. So the first read that gets no answer
//! at all after its retries (a refused or reset connection, a timeout; not an answer such as
//! "slow down", which a live store gives) marks the store *down*: the reads still waiting in
//! their retries are given up at once with that failure, and later reads are sent once,
//! without retries. The first read that is answered marks the store up again, so a store that
//! comes back is used as before.

use opendal::ErrorKind;
use tokio::sync::watch;

/// Whether the store is known to be down, and the failure that showed it.
pub(crate) struct Down {
    state: watch::Sender<Option<String>>,
}

impl Default for Down {
    fn default() -> Down {
        Down {
            state: watch::Sender::new(None),
        }
    }
}

impl Down {
    /// Whether a read has found the store gone and none has been answered since.
    #[cfg(test)]
    fn is_down(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// Records that a read got no answer (`why`: its failure, naming archive and object).
    pub(crate) fn mark(&self, why: String) {
        self.state.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(why);
            }
            first
        });
    }

    /// Records that a read was answered: the store is there.
    pub(crate) fn clear(&self) {
        self.state.send_if_modified(|s| s.take().is_some());
    }

    /// Runs the read `start` makes (told whether the store is down as it begins) until it
    /// ends, or until another read finds the store down after this one began: `Err` with that
    /// read's failure then (and the read is dropped, cancelling it).
    pub(crate) async fn unless_down<F: std::future::Future>(
        &self,
        start: impl FnOnce(bool) -> F,
    ) -> Result<F::Output, String> {
        let mut rx = self.state.subscribe();
        // Seen here, with the subscription: a change after this moment is a change to wait for.
        let read = start(rx.borrow_and_update().is_some());
        let went_down = async move {
            loop {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if let Some(why) = rx.borrow_and_update().clone() {
                    return why;
                }
            }
        };
        let (read, went_down) = (std::pin::pin!(read), std::pin::pin!(went_down));
        match futures::future::select(read, went_down).await {
            futures::future::Either::Left((done, _)) => Ok(done),
            futures::future::Either::Right((why, _)) => Err(why),
        }
    }
}

/// Whether `e` means no answer came at all, after the retries: the store is not there.
pub(crate) fn no_answer(e: &opendal::Error) -> bool {
    let text = e.to_string();
    e.kind() == ErrorKind::Unexpected
        && ["send http request", "timeout reached"]
            .iter()
            .any(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_read_waiting_when_the_store_goes_down_is_given_up_with_that_failure() {
        let down = Down::default();
        let out = rt().block_on(async {
            let waiting = down.unless_down(|_| std::future::pending::<()>());
            let marking = async {
                tokio::task::yield_now().await;
                down.mark("s3://b/p/: reading packs/x: connection refused".into());
            };
            futures::future::join(waiting, marking).await.0
        });
        assert_eq!(
            out,
            Err("s3://b/p/: reading packs/x: connection refused".to_string())
        );
        assert!(down.is_down());
        down.clear();
        assert!(!down.is_down());
    }

    #[test]
    fn a_read_begun_while_the_store_is_down_runs_to_its_own_end() {
        let down = Down::default();
        down.mark("gone".into());
        let out = rt().block_on(down.unless_down(|down| async move { down }));
        assert_eq!(out, Ok(true), "told it is down, and not given up");
    }

    #[test]
    fn only_a_lack_of_any_answer_marks_the_store_down() {
        let refused = opendal::Error::new(ErrorKind::Unexpected, "send http request");
        assert!(no_answer(&refused));
        let slow = opendal::Error::new(ErrorKind::RateLimited, "SlowDown");
        assert!(!no_answer(&slow));
        let missing = opendal::Error::new(ErrorKind::NotFound, "NoSuchKey");
        assert!(!no_answer(&missing));
    }
}
