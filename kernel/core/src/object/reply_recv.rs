//! `reply_recv`: a server's answer and its next wait in one crossing (as
//! seL4's `ReplyRecv`), built from the endpoint calls' own `reply` and
//! `recv` so that it keeps every rule of theirs (badges, bounded queues,
//! charging, wake-with-error). What it adds: the receive capability and
//! the flags are checked before anything is sent, and it says whom it
//! answered, so that the kernel's glue can switch straight to that caller
//! when the server blocks (no round of the scheduler).
use super::{CapKind, Kernel, Outcome, Platform};
use abi::{Error, Handle};

/// How a `reply_recv` went once its reply was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRecv {
    /// The caller the reply woke (runnable now).
    pub answered: u64,
    /// The receive half: a message at once ([`Outcome::Done`]), or the
    /// server is blocked ([`Outcome::Blocked`]), or its error (the reply
    /// stands).
    pub recv: Result<Outcome, Error>,
}

impl<P: Platform> Kernel<P> {
    /// `reply_recv(ep, w0, w1, cap, flags)`: `reply(w0, w1, cap, flags)`,
    /// then `recv(ep, FOREVER)` at tick `now`. `Err` (nothing sent,
    /// nothing received) if `ep` is not the caller's receive capability of
    /// a live endpoint, if `flags` has a bit outside `SEND_CAP_FLAGS`, or if
    /// the reply fails.
    pub fn reply_recv(
        &mut self,
        pid: u64,
        ep: Handle,
        words: [u64; 2],
        cap: u64,
        flags: u64,
        now: u64,
    ) -> Result<ReplyRecv, Error> {
        // Flags before the handle, as `send` and `call` check them.
        if flags & !abi::SEND_CAP_FLAGS != 0 {
            return Err(Error::InvalidArgument);
        }
        let CapKind::EndpointRecv { ep: id } = self.caller(pid)?.caps.get(ep)?.kind else {
            return Err(Error::InvalidArgument);
        };
        if !self.endpoints.contains_key(&id) {
            return Err(Error::NoSuchProcess);
        }
        let answered = match self.reply(pid, words, cap, flags)? {
            Outcome::Woke(to) => to,
            // `reply` wakes its caller or fails.
            Outcome::Done(_) | Outcome::Blocked => return Err(Error::InvalidArgument),
        };
        Ok(ReplyRecv {
            answered,
            recv: self.recv(pid, ep, abi::FOREVER, now),
        })
    }
}
