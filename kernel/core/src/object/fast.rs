//! The IPC fast path (as seL4's and L4's): the two crossings of a round
//! trip, `call` to a receiver already blocked in `recv` and `reply_recv`
//! to a caller blocked for its reply when nothing else is queued, done as
//! one state transition each, with one look-up of each object and no
//! decoding beyond what the registers say.
//!
//! Each function either does exactly what the general `call` or
//! `reply_recv` would (the same waits, results, reply obligation and
//! badge; the host tests compare the two) and returns the process to run
//! next, or changes nothing and returns `None`, and the general path runs.
//! Only word-only messages (no capability, no flags) take it.
use super::{CapKind, Kernel, Platform, SetResult, Wait};
use abi::Handle;

impl<P: Platform> Kernel<P> {
    /// `call(h, words)` with no capability and no flags, when the
    /// endpoint's owner is blocked in `recv` on it (so its queue is
    /// empty) and owes no other reply: the owner gets the message and the
    /// reply obligation, the caller waits for the reply. Returns the
    /// owner, which runs next.
    pub fn call_fast(&mut self, pid: u64, h: Handle, words: [u64; 2]) -> Option<u64> {
        let CapKind::EndpointSend { ep, badge } =
            self.procs.running_mut(pid)?.caps.get(h).ok()?.kind
        else {
            return None;
        };
        let e = self.endpoints.get(&ep)?;
        if !e.queue.is_empty() {
            return None;
        }
        let owner = e.owner;
        let r = self.procs.get_mut(owner)?;
        let receiving = matches!(r.wait, Some(Wait::Recv { ep: w, .. }) if w == ep);
        if !receiving || r.reply_to.is_some() {
            return None;
        }
        r.wait = None;
        r.reply_to = Some(pid);
        r.regs
            .set_result(0, [badge, words[0], words[1], 0, abi::RECV_CALL]);
        if let Some(c) = self.procs.running_mut(pid) {
            c.wait = Some(Wait::Reply { deadline: None });
        }
        Some(owner)
    }

    /// `reply_recv(h, words)` with no capability and no flags, when the
    /// caller owed a reply to a process still waiting for it and nothing
    /// is queued on the endpoint of receive capability `h`: the answered
    /// process gets the words (badge 0), the caller waits on `h` without a
    /// timeout. Returns the answered process, which runs next.
    pub fn reply_recv_fast(&mut self, pid: u64, h: Handle, words: [u64; 2]) -> Option<u64> {
        let c = self.procs.running_mut(pid)?;
        let CapKind::EndpointRecv { ep } = c.caps.get(h).ok()?.kind else {
            return None;
        };
        let to = c.reply_to?;
        if !self.endpoints.get(&ep)?.queue.is_empty() {
            return None;
        }
        let t = self.procs.get_mut(to)?;
        if !matches!(t.wait, Some(Wait::Reply { .. })) {
            return None;
        }
        t.wait = None;
        t.regs.set_result(0, [0, words[0], words[1], 0, 0]);
        if let Some(c) = self.procs.running_mut(pid) {
            c.reply_to = None;
            c.wait = Some(Wait::Recv { ep, deadline: None });
        }
        Some(to)
    }
}
