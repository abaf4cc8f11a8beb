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

/// The capability a fast-path message moves: what `cap` (0: none) of the
/// sender `p` would become in the receiver's table, or `Err` when the fast
/// path cannot take it (no `TRANSFER` right, mapped, not held). Only
/// reads: the receiver's table gets it first, the sender's loses it after
/// (so that a refused insertion changes nothing), and a move leaves the
/// ledger as it is (the reference travels).
#[inline(always)]
fn movable<S, R>(p: &mut super::Process<S, R>, cap: u64) -> Result<Option<Cap>, ()> {
    if cap == 0 {
        return Ok(None);
    }
    let held = *p.caps.get(Handle::from_raw(cap)).map_err(drop)?;
    if held.mapped > 0 || !held.rights.contains(Rights::TRANSFER) {
        return Err(());
    }
    Ok(Some(Cap { mapped: 0, ..held }))
}

/// Puts a moved capability into the receiver's table: its handle there (0
/// for none), or `None` (nothing changed) when the table refuses it.
#[inline(always)]
fn insert<S, R>(p: &mut super::Process<S, R>, moved: Option<Cap>) -> Option<u64> {
    match moved {
        None => Some(0),
        Some(c) => p.caps.try_insert(c).ok().map(Handle::raw),
    }
}

impl<P: Platform> Kernel<P> {
    /// `call(h, words, cap)` with no flags, when the endpoint's owner is
    /// blocked in `recv` on it (so its queue is empty) and owes no other
    /// reply: the owner gets the message (and `cap`, moved) and the reply
    /// obligation, the caller waits for the reply. Returns the owner,
    /// which runs next.
    #[inline]
    pub fn call_fast(&mut self, pid: u64, h: Handle, words: [u64; 2], cap: u64) -> Option<u64> {
        let c = self.procs.running_mut(pid)?;
        let CapKind::EndpointSend { ep, badge } = c.caps.get(h).ok()?.kind else {
            return None;
        };
        let moved = movable(c, cap).ok()?;
        let e = self.endpoints.get(&ep)?;
        if !e.queue.is_empty() {
            return None;
        }
        let owner = e.owner;
        let (c, r) = self.procs.running_and_mut(pid, owner)?;
        let receiving = matches!(r.wait, Some(Wait::Recv { ep: w, .. }) if w == ep);
        if !receiving || r.reply_to.is_some() {
            return None;
        }
        let got = insert(r, moved)?;
        r.wait = None;
        r.reply_to = Some(pid);
        r.regs
            .set_result(0, [badge, words[0], words[1], got, abi::RECV_CALL]);
        if moved.is_some() {
            // Looked up above; nothing touched this table since.
            let _ = c.caps.remove(Handle::from_raw(cap));
        }
        c.wait = Some(Wait::Reply { deadline: None });
        Some(owner)
    }

    /// `reply_recv(h, words, cap)` with no flags, when the caller owed a
    /// reply to a process still waiting for it and nothing is queued on
    /// the endpoint of receive capability `h`: the answered process gets
    /// the words (badge 0) and `cap` (moved), the caller waits on `h`
    /// without a timeout. Returns the answered process, which runs next.
    #[inline]
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
        let moved = movable(c, cap).ok()?;
        if !self.endpoints.get(&ep)?.queue.is_empty() {
            return None;
        }
        let (c, t) = self.procs.running_and_mut(pid, to)?;
        if !matches!(t.wait, Some(Wait::Reply { .. })) {
            return None;
        }
        let got = insert(t, moved)?;
        t.wait = None;
        t.regs.set_result(0, [0, words[0], words[1], got, 0]);
        if moved.is_some() {
            // Looked up above; nothing touched this table since.
            let _ = c.caps.remove(Handle::from_raw(cap));
        }
        c.reply_to = None;
        c.wait = Some(Wait::Recv { ep, deadline: None });
        Some(to)
    }
}
