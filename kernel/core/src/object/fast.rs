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
//! Messages without flags take it: two words and at most one capability,
//! moved (a copy, `SEND_COPY`, takes the general path), unmapped in the
//! sender (a mapped one takes the general path, which unmaps it).
use super::{Cap, CapKind, Kernel, Platform, SetResult, Wait};
use abi::{Handle, Rights};

impl<P: Platform> Kernel<P> {
    /// Moves capability `cap` (a handle) of `from`, the running process,
    /// into `to`'s table: its new handle there, or `None`
    /// with nothing changed when the fast path cannot (no `TRANSFER`
    /// right, mapped, `to`'s table full). Inserted first and removed
    /// after, so that a refused insertion changes nothing; a move leaves
    /// the ledger as it is (the reference travels).
    #[inline(never)]
    fn move_cap(&mut self, from: u64, to: u64, cap: u64) -> Option<u64> {
        let h = Handle::from_raw(cap);
        let held = *self.procs.running_mut(from)?.caps.get(h).ok()?;
        if held.mapped > 0 || !held.rights.contains(Rights::TRANSFER) {
            return None;
        }
        let moved = Cap { mapped: 0, ..held };
        let new = self.procs.get_mut(to)?.caps.try_insert(moved).ok()?;
        // Looked up just above, and nothing touched `from`'s table since.
        if let Some(f) = self.procs.running_mut(from) {
            let _ = f.caps.remove(h);
        }
        Some(new.raw())
    }

    /// `call(h, words, cap)` with no flags, when the endpoint's owner is
    /// blocked in `recv` on it (so its queue is empty) and owes no other
    /// reply: the owner gets the message (and `cap`, moved) and the reply
    /// obligation, the caller waits for the reply. Returns the owner,
    /// which runs next.
    pub fn call_fast(&mut self, pid: u64, h: Handle, words: [u64; 2], cap: u64) -> Option<u64> {
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
        let mut r = self.procs.get_mut(owner)?;
        let receiving = matches!(r.wait, Some(Wait::Recv { ep: w, .. }) if w == ep);
        if !receiving || r.reply_to.is_some() {
            return None;
        }
        let mut got = 0;
        if cap != 0 {
            got = self.move_cap(pid, owner, cap)?;
            r = self.procs.get_mut(owner)?;
        }
        r.wait = None;
        r.reply_to = Some(pid);
        r.regs
            .set_result(0, [badge, words[0], words[1], got, abi::RECV_CALL]);
        if let Some(c) = self.procs.running_mut(pid) {
            c.wait = Some(Wait::Reply { deadline: None });
        }
        Some(owner)
    }

    /// `reply_recv(h, words, cap)` with no flags, when the caller owed a
    /// reply to a process still waiting for it and nothing is queued on
    /// the endpoint of receive capability `h`: the answered process gets
    /// the words (badge 0) and `cap` (moved), the caller waits on `h`
    /// without a timeout. Returns the answered process, which runs next.
    pub fn reply_recv_fast(
        &mut self,
        pid: u64,
        h: Handle,
        words: [u64; 2],
        cap: u64,
    ) -> Option<u64> {
        let c = self.procs.running_mut(pid)?;
        let CapKind::EndpointRecv { ep } = c.caps.get(h).ok()?.kind else {
            return None;
        };
        let to = c.reply_to?;
        if !self.endpoints.get(&ep)?.queue.is_empty() {
            return None;
        }
        let mut t = self.procs.get_mut(to)?;
        if !matches!(t.wait, Some(Wait::Reply { .. })) {
            return None;
        }
        let mut got = 0;
        if cap != 0 {
            got = self.move_cap(pid, to, cap)?;
            t = self.procs.get_mut(to)?;
        }
        t.wait = None;
        t.regs.set_result(0, [0, words[0], words[1], got, 0]);
        if let Some(c) = self.procs.running_mut(pid) {
            c.reply_to = None;
            c.wait = Some(Wait::Recv { ep, deadline: None });
        }
        Some(to)
    }
}
