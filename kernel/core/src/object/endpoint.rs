//! Endpoints: how library OSes talk to each other, pass capabilities and
//! wait. They are the only way a capability reaches another process: the
//! open inbox (`cap_transfer` to any pid, numbers 10 and 11, retired) let
//! anyone queue capabilities into anyone's table without consent.
//!
//! An endpoint belongs to the process that created it, which holds its
//! one *receive* capability (not transferable). It hands out *send*
//! capabilities, each carrying a badge chosen by whoever minted it
//! (`endpoint_mint`), or by the kernel for a published endpoint found with
//! `endpoint_lookup`: there the badge is the looker's pid, which the
//! kernel stamps, so it cannot be guessed or forged. The kernel delivers
//! the badge with every message: a receiver always knows which send
//! capability was used.
//!
//! A message is two words of data and at most one capability, moved (or,
//! with `SEND_COPY`, copied) out of the sender's table. A queue holds at
//! most [`abi::bounds::QUEUE`] messages; a capability in a queue is still
//! charged to its sender until it is received. When the receiver ends, its
//! endpoints go and everything queued returns; when a sender ends, its
//! queued messages go with it. The invariant checks count queued
//! capabilities like every other reference.
//!
//! Blocking: `recv` waits for a message (with a timeout in timer ticks),
//! `call` sends and waits for the `reply`, and a `send` with `SEND_BLOCK`
//! waits for room in a full queue (without it, a full queue is
//! `WouldBlock`). A blocked process is runnable again when what it waits
//! for happens, when its timeout passes, or when the other side ends; what
//! it gets back is written into its saved registers through
//! [`SetResult`]. The kernel's glue decides what runs next and idles when
//! nothing can.
use super::{require, Cap, CapKind, Kernel, Platform};
use abi::{Error, Handle, Rights};
use alloc::collections::VecDeque;

/// One queued message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The badge of the send capability it came through.
    pub badge: u64,
    /// Two words of data.
    pub words: [u64; 2],
    /// A capability travelling with it (charged to `from` until received).
    pub cap: Option<Cap>,
    /// The sender.
    pub from: u64,
    /// Sent by `call`: the receiver owes `from` a reply.
    pub call: bool,
    /// Made by the kernel for a bound interrupt (`words`: the vector and a
    /// count), never by a program: the receiver sees [`abi::RECV_IRQ`].
    pub irq: bool,
}

/// An endpoint: its owner (the only receiver) and its queue.
#[derive(Debug)]
pub struct Endpoint {
    /// The process that created it.
    pub owner: u64,
    /// Messages not yet received, oldest first.
    pub queue: VecDeque<Message>,
    /// Senders blocked for room (`SEND_BLOCK` on a full queue), in the
    /// order they blocked: they get in first come, first served.
    pub blocked: VecDeque<u64>,
}

/// What a blocked process waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A message on endpoint `ep`, until tick `deadline` (`None`: forever).
    Recv {
        /// The endpoint.
        ep: u64,
        /// Timer tick at which it gives up.
        deadline: Option<u64>,
    },
    /// The reply to its `call`.
    Reply {
        /// Timer tick at which it gives up.
        deadline: Option<u64>,
    },
    /// Room in endpoint `ep`'s queue for `msg` (its capability, if any, is
    /// out of the sender's table already, still charged to it).
    Send {
        /// The endpoint.
        ep: u64,
        /// The message.
        msg: Message,
    },
}

/// Writes what a woken process gets back into its saved registers: `rax`
/// the error code or 0, then badge, the two words, the handle of the
/// capability received (0: none) and flags ([`abi::RECV_CALL`]).
pub trait SetResult {
    /// Sets the result registers of a call that delivers a message
    /// (`recv`, `call`: their stubs declare all six).
    fn set_result(&mut self, rax: u64, values: [u64; 5]);
    /// Sets only `rax` (and `rdx` to 0): the result of a `send` that
    /// waited, whose stub declares no other register written.
    fn set_status(&mut self, rax: u64);
}

impl SetResult for () {
    fn set_result(&mut self, _: u64, _: [u64; 5]) {}
    fn set_status(&mut self, _: u64) {}
}

/// What a message looks like to its receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The send capability's badge.
    pub badge: u64,
    /// The data.
    pub words: [u64; 2],
    /// The capability's new handle in the receiver's table (0: none).
    pub cap: u64,
    /// [`abi::RECV_CALL`] if a reply is owed.
    pub flags: u64,
}

impl Received {
    /// The registers after `rax`.
    pub fn values(&self) -> [u64; 5] {
        [
            self.badge,
            self.words[0],
            self.words[1],
            self.cap,
            self.flags,
        ]
    }
}

/// How a call that may block turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, the caller goes on (with these results for `recv`).
    Done(Received),
    /// Done, and process `pid`, which was blocked, is runnable again (the
    /// glue may switch to it at once: the `call` fast path).
    Woke(u64),
    /// The caller is blocked now; the glue must run someone else.
    Blocked,
}

/// The rights a message's capability travels with under `flags`: those
/// of [`abi::SEND_RIGHTS`], which must be a non-empty subset of `held`
/// (`InvalidArgument`, `PermissionDenied`), else all of `held`.
fn sent_rights(flags: u64, held: Rights) -> Result<Rights, Error> {
    if flags & abi::SEND_RIGHTS == 0 {
        return Ok(held);
    }
    let asked = Rights::from_bits((flags >> abi::SEND_RIGHTS_SHIFT) & Rights::ALL.bits())
        .filter(|r| !r.is_empty())
        .ok_or(Error::InvalidArgument)?;
    require(held, asked)?;
    Ok(asked)
}

impl<P: Platform> Kernel<P> {
    /// `endpoint_create(publish)`: a new endpoint owned by the caller;
    /// returns its receive capability. With `publish`, `endpoint_lookup`
    /// of the caller's name finds it (one published endpoint per process:
    /// a second replaces the first).
    pub fn endpoint_create(&mut self, pid: u64, publish: bool) -> Result<u64, Error> {
        // Each endpoint's queue costs kernel heap: a bounded number each.
        if self.endpoints.values().filter(|e| e.owner == pid).count() >= abi::bounds::ENDPOINTS {
            return Err(Error::OutOfMemory);
        }
        let id = self.endpoints.next_id();
        let cap = Cap {
            kind: CapKind::EndpointRecv { ep: id },
            rights: Rights::NONE,
            mapped: 0,
        };
        let p = self.caller(pid)?;
        let h = p.caps.insert(cap)?;
        if publish {
            p.published = Some(id);
        }
        // Nothing was inserted since `next_id`: the id the capability names.
        let given = self.endpoints.insert(Endpoint {
            owner: pid,
            queue: VecDeque::new(),
            blocked: VecDeque::new(),
        });
        debug_assert_eq!(given, id);
        Ok(h.raw())
    }

    /// `endpoint_mint(recv, badge)`: a send capability to the caller's
    /// endpoint, with `badge` (transferable).
    pub fn endpoint_mint(&mut self, pid: u64, recv: Handle, badge: u64) -> Result<u64, Error> {
        let p = self.caller(pid)?;
        let CapKind::EndpointRecv { ep } = p.caps.get(recv)?.kind else {
            return Err(Error::InvalidArgument);
        };
        let cap = Cap {
            kind: CapKind::EndpointSend { ep, badge },
            rights: Rights::TRANSFER,
            mapped: 0,
        };
        Ok(p.caps.insert(cap)?.raw())
    }

    /// `endpoint_lookup(name)`: a send capability to the endpoint process
    /// `name` published, badged with the caller's pid.
    pub fn endpoint_lookup(&mut self, pid: u64, name: &[u8]) -> Result<u64, Error> {
        let ep = self
            .procs
            .values()
            .find(|p| p.name.as_bytes() == name)
            .ok_or(Error::NoSuchProcess)?
            .published
            .ok_or(Error::NoSuchProcess)?;
        let cap = Cap {
            kind: CapKind::EndpointSend { ep, badge: pid },
            rights: Rights::TRANSFER,
            mapped: 0,
        };
        Ok(self.caller(pid)?.caps.insert(cap)?.raw())
    }

    /// The endpoint and badge a send capability names.
    pub(super) fn send_target(&mut self, pid: u64, h: Handle) -> Result<(u64, u64), Error> {
        match self.caller(pid)?.caps.get(h)?.kind {
            CapKind::EndpointSend { ep, badge } => Ok((ep, badge)),
            CapKind::EndpointRecv { .. } => Err(Error::PermissionDenied),
            _ => Err(Error::InvalidArgument),
        }
    }

    /// Takes the capability a message carries out of the sender's table
    /// (moved, or copied with `SEND_COPY`; with only the rights of
    /// `SEND_RIGHTS`); needs `TRANSFER`.
    #[inline(always)]
    fn take_cap(&mut self, pid: u64, cap: u64, flags: u64) -> Result<Option<Cap>, Error> {
        if cap == 0 {
            // Rights for no capability: a caller's mistake, said so.
            return if flags & abi::SEND_RIGHTS == 0 {
                Ok(None)
            } else {
                Err(Error::InvalidArgument)
            };
        }
        self.take_held_cap(pid, cap, flags).map(Some)
    }

    /// [`take_cap`](Self::take_cap) of a real handle (off the one-word
    /// `call`/`reply` path).
    #[inline(never)]
    fn take_held_cap(&mut self, pid: u64, cap: u64, flags: u64) -> Result<Cap, Error> {
        let copy = flags & abi::SEND_COPY != 0;
        let h = Handle::from_raw(cap);
        let held = *self.caller(pid)?.caps.get(h)?;
        require(held.rights, Rights::TRANSFER)?;
        let rights = sent_rights(flags, held.rights)?;
        let sent = Cap {
            mapped: 0,
            rights,
            ..held
        };
        if copy {
            if matches!(held.kind, CapKind::EndpointRecv { .. }) {
                return Err(Error::PermissionDenied);
            }
            self.ledger.add_ref(held.kind);
        } else {
            // As `frame_free`: its mappings go, the reference travels.
            let p = self.caller(pid)?;
            let held = p.caps.remove(h)?;
            if held.mapped > 0 {
                super::unmap_handle(p, h);
                // Out of every device's reach before it travels.
                if p.iomaps > 0 {
                    self.io_unmap_handle(pid, h);
                }
            }
        }
        Ok(sent)
    }

    /// Puts a capability that was taken for a message back into `pid`'s
    /// table, or (table full, or `pid` gone) drops the reference.
    fn return_cap(&mut self, pid: u64, cap: Option<Cap>) {
        let Some(cap) = cap else { return };
        let back = match self.procs.get_mut(pid) {
            Some(p) => p.caps.try_insert(cap).map(drop).map_err(|(_, c)| c),
            None => Err(cap),
        };
        if let Err(cap) = back {
            self.drop_ref(cap.kind);
        }
    }

    /// Wakes `pid` with `rax` and `values`.
    fn wake(&mut self, pid: u64, rax: u64, values: [u64; 5]) {
        if let Some(p) = self.procs.get_mut(pid) {
            p.wait = None;
            p.regs.set_result(rax, values);
        }
    }

    /// Wakes `pid`, blocked in `send`, with `rax` alone.
    fn wake_sender(&mut self, pid: u64, rax: u64) {
        if let Some(p) = self.procs.get_mut(pid) {
            p.wait = None;
            p.regs.set_status(rax);
        }
    }

    /// Hands `msg` to `receiver` (its capability into its table): the
    /// results it gets. On a full table the message stays with the caller
    /// (`Err`).
    fn hand_over(&mut self, receiver: u64, msg: Message) -> Result<Received, (Error, Message)> {
        let Some(p) = self.procs.get_mut(receiver) else {
            return Err((Error::NoSuchProcess, msg));
        };
        let cap = match msg.cap {
            None => 0,
            Some(c) => match p.caps.try_insert(c) {
                Ok(h) => h.raw(),
                Err((e, _)) => return Err((e.into(), msg)),
            },
        };
        if msg.call {
            if let Some(old) = p.reply_to.replace(msg.from) {
                // A reply still owed is dropped: that caller learns so.
                self.wake(old, Error::NoSuchProcess as u64, [0; 5]);
            }
        }
        Ok(Received {
            badge: msg.badge,
            words: msg.words,
            cap,
            flags: if msg.call { abi::RECV_CALL } else { 0 }
                | if msg.irq { abi::RECV_IRQ } else { 0 },
        })
    }

    /// Delivers `msg` to endpoint `ep`: straight to its owner if it is
    /// blocked in `recv` on it, else into the queue. `Ok(Some(pid))` if
    /// the owner woke.
    pub(super) fn deliver(
        &mut self,
        ep: u64,
        msg: Message,
    ) -> Result<Option<u64>, (Error, Message)> {
        let Some(endpoint) = self.endpoints.get(&ep) else {
            return Err((Error::NoSuchProcess, msg));
        };
        let owner = endpoint.owner;
        let waiting = self
            .procs
            .get(owner)
            .is_some_and(|p| matches!(p.wait, Some(Wait::Recv { ep: e, .. }) if e == ep));
        if waiting {
            match self.hand_over(owner, msg) {
                Ok(got) => {
                    self.wake(owner, 0, got.values());
                    return Ok(Some(owner));
                }
                Err((e, msg)) => {
                    // Its table is full: it learns so, the message waits.
                    self.wake(owner, e as u64, [0; 5]);
                    return self.enqueue(ep, msg).map(|()| Some(owner));
                }
            }
        }
        self.enqueue(ep, msg).map(|()| None)
    }

    fn enqueue(&mut self, ep: u64, msg: Message) -> Result<(), (Error, Message)> {
        let Some(endpoint) = self.endpoints.get_mut(&ep) else {
            return Err((Error::NoSuchProcess, msg));
        };
        if endpoint.queue.len() >= abi::bounds::QUEUE {
            return Err((Error::WouldBlock, msg));
        }
        endpoint.queue.push_back(msg);
        Ok(())
    }

    /// Checks `flags` against `allowed`, then finds the endpoint and badge
    /// of send capability `h` and whether the endpoint's queue is full.
    fn target(
        &mut self,
        pid: u64,
        h: Handle,
        flags: u64,
        allowed: u64,
    ) -> Result<(u64, u64, bool), Error> {
        if flags & !allowed != 0 {
            return Err(Error::InvalidArgument);
        }
        let (ep, badge) = self.send_target(pid, h)?;
        match self.endpoints.get(&ep) {
            None => Err(Error::NoSuchProcess),
            Some(e) => Ok((ep, badge, e.queue.len() >= abi::bounds::QUEUE)),
        }
    }

    /// The message `pid` sends through a capability with `badge`: its
    /// capability (handle `cap`, 0: none) taken out of the table.
    fn message(
        &mut self,
        pid: u64,
        badge: u64,
        words: [u64; 2],
        cap: u64,
        flags: u64,
        call: bool,
    ) -> Result<Message, Error> {
        let cap = self.take_cap(pid, cap, flags)?;
        Ok(Message {
            badge,
            words,
            cap,
            from: pid,
            call,
            irq: false,
        })
    }

    /// `send(ep, w0, w1, cap, flags)`.
    pub fn send(
        &mut self,
        pid: u64,
        h: Handle,
        words: [u64; 2],
        cap: u64,
        flags: u64,
    ) -> Result<Outcome, Error> {
        let (ep, badge, full) =
            self.target(pid, h, flags, abi::SEND_CAP_FLAGS | abi::SEND_BLOCK)?;
        if full && flags & abi::SEND_BLOCK == 0 {
            return Err(Error::WouldBlock);
        }
        let msg = self.message(pid, badge, words, cap, flags, false)?;
        if full {
            self.caller(pid)?.wait = Some(Wait::Send { ep, msg });
            if let Some(e) = self.endpoints.get_mut(&ep) {
                e.blocked.push_back(pid);
            }
            return Ok(Outcome::Blocked);
        }
        match self.deliver(ep, msg) {
            Ok(Some(woke)) => Ok(Outcome::Woke(woke)),
            Ok(None) => Ok(Outcome::Done(Received::default())),
            Err((e, msg)) => {
                self.return_cap(pid, msg.cap);
                Err(e)
            }
        }
    }

    /// `call(ep, w0, w1, cap, flags)`: send, then wait for the reply (a
    /// full queue is `WouldBlock`: a call never waits for room).
    pub fn call(
        &mut self,
        pid: u64,
        h: Handle,
        words: [u64; 2],
        cap: u64,
        flags: u64,
    ) -> Result<Outcome, Error> {
        let (ep, badge, full) = self.target(pid, h, flags, abi::SEND_CAP_FLAGS)?;
        if full {
            return Err(Error::WouldBlock);
        }
        let msg = self.message(pid, badge, words, cap, flags, true)?;
        // Blocked before the delivery, so that a receiver that answers at
        // once finds it waiting.
        self.caller(pid)?.wait = Some(Wait::Reply { deadline: None });
        match self.deliver(ep, msg) {
            Ok(Some(woke)) => Ok(Outcome::Woke(woke)),
            Ok(None) => Ok(Outcome::Blocked),
            Err((e, msg)) => {
                self.caller(pid)?.wait = None;
                self.return_cap(pid, msg.cap);
                Err(e)
            }
        }
    }

    /// `recv(ep, timeout)`: the oldest message on the caller's endpoint;
    /// with none, waits up to `timeout` ticks (0: `WouldBlock` at once,
    /// `u64::MAX`: forever). `now` is the current tick.
    pub fn recv(&mut self, pid: u64, h: Handle, timeout: u64, now: u64) -> Result<Outcome, Error> {
        let CapKind::EndpointRecv { ep } = self.caller(pid)?.caps.get(h)?.kind else {
            return Err(Error::InvalidArgument);
        };
        let Some(endpoint) = self.endpoints.get_mut(&ep) else {
            return Err(Error::NoSuchProcess);
        };
        if let Some(msg) = endpoint.queue.pop_front() {
            let got = match self.hand_over(pid, msg) {
                Ok(got) => got,
                Err((e, msg)) => {
                    if let Some(endpoint) = self.endpoints.get_mut(&ep) {
                        endpoint.queue.push_front(msg);
                    }
                    return Err(e);
                }
            };
            self.deliver_pending_irqs(ep);
            self.admit_blocked_senders(ep);
            return Ok(Outcome::Done(got));
        }
        if timeout == 0 {
            return Err(Error::WouldBlock);
        }
        let deadline = (timeout != u64::MAX).then(|| now.saturating_add(timeout));
        self.caller(pid)?.wait = Some(Wait::Recv { ep, deadline });
        Ok(Outcome::Blocked)
    }

    /// Messages left endpoint `ep`'s queue: senders blocked on it get in,
    /// in the order they blocked, while there is room.
    fn admit_blocked_senders(&mut self, ep: u64) {
        loop {
            let Some(endpoint) = self.endpoints.get_mut(&ep) else {
                return;
            };
            if endpoint.queue.len() >= abi::bounds::QUEUE {
                return;
            }
            let Some(pid) = endpoint.blocked.pop_front() else {
                return;
            };
            let msg = match self.procs.get(pid).and_then(|p| p.wait) {
                Some(Wait::Send { ep: e, msg }) if e == ep => msg,
                // Not waiting here any more (kept in order only).
                _ => continue,
            };
            if let Some(endpoint) = self.endpoints.get_mut(&ep) {
                endpoint.queue.push_back(msg);
            }
            self.wake_sender(pid, 0);
        }
    }

    /// `reply(w0, w1, cap, flags)`: answers the call the caller received
    /// last; `InvalidArgument` if it owes none.
    pub fn reply(
        &mut self,
        pid: u64,
        words: [u64; 2],
        cap: u64,
        flags: u64,
    ) -> Result<Outcome, Error> {
        if flags & !abi::SEND_CAP_FLAGS != 0 {
            return Err(Error::InvalidArgument);
        }
        let Some(to) = self.caller(pid)?.reply_to else {
            return Err(Error::InvalidArgument);
        };
        let waiting = self
            .procs
            .get(to)
            .is_some_and(|p| matches!(p.wait, Some(Wait::Reply { .. })));
        if !waiting {
            // It gave up (ended, or timed out): nothing to answer.
            self.caller(pid)?.reply_to = None;
            return Err(Error::NoSuchProcess);
        }
        // Room for the capability first: a refusal must leave the
        // replier's handle (and its mappings) as they were.
        if cap != 0
            && self
                .procs
                .get(to)
                .is_some_and(|p| p.caps.len() >= p.caps.capacity())
        {
            return Err(Error::CapTableFull);
        }
        let msg = self.message(pid, 0, words, cap, flags, false)?;
        match self.hand_over(to, msg) {
            Ok(got) => {
                self.caller(pid)?.reply_to = None;
                self.wake(to, 0, got.values());
                Ok(Outcome::Woke(to))
            }
            Err((e, msg)) => {
                self.return_cap(pid, msg.cap);
                Err(e)
            }
        }
    }

    /// Timer tick `now`: every wait whose deadline has passed ends with
    /// `WouldBlock`. Returns whether anyone woke.
    pub fn tick(&mut self, now: u64) -> bool {
        let expired: alloc::vec::Vec<u64> = self
            .procs
            .values()
            .filter(|p| match p.wait {
                Some(Wait::Recv {
                    deadline: Some(d), ..
                })
                | Some(Wait::Reply { deadline: Some(d) }) => d <= now,
                _ => false,
            })
            .map(|p| p.pid)
            .collect();
        for &pid in &expired {
            self.wake(pid, Error::WouldBlock as u64, [0; 5]);
        }
        !expired.is_empty()
    }

    /// Whether anything could still wake a blocked process when none runs:
    /// a timeout, or an interrupt bound to an endpoint. If not, every
    /// process waits for another that waits too: a deadlock.
    pub fn can_wake(&self) -> bool {
        !self.irqs.is_empty()
            || self.procs.values().any(|p| {
                matches!(
                    p.wait,
                    Some(Wait::Recv {
                        deadline: Some(_),
                        ..
                    }) | Some(Wait::Reply { deadline: Some(_) })
                )
            })
    }

    /// Every capability in a queue or a blocked send, with its sender.
    pub fn queued_caps(&self) -> impl Iterator<Item = (u64, Cap)> + '_ {
        let queued = self
            .endpoints
            .values()
            .flat_map(|e| e.queue.iter())
            .filter_map(|m| m.cap.map(|c| (m.from, c)));
        let blocked = self.procs.values().filter_map(|p| match p.wait {
            Some(Wait::Send { msg, .. }) => msg.cap.map(|c| (p.pid, c)),
            _ => None,
        });
        queued.chain(blocked)
    }

    /// Endpoint `id` goes (its receive capability was freed, or its owner
    /// ends): its queued capabilities return, callers whose call waited in
    /// it and senders blocked on it learn it.
    pub(super) fn destroy_endpoint(&mut self, id: u64) {
        let Some(e) = self.endpoints.remove(&id) else {
            return;
        };
        for p in self.procs.values_mut() {
            if p.published == Some(id) {
                p.published = None;
            }
        }
        for msg in e.queue {
            if msg.call {
                self.wake(msg.from, Error::NoSuchProcess as u64, [0; 5]);
            }
            if let Some(cap) = msg.cap {
                self.drop_ref(cap.kind);
            }
        }
        let blocked: alloc::vec::Vec<(u64, Message)> = self
            .procs
            .values()
            .filter_map(|p| match p.wait {
                Some(Wait::Send { ep, msg }) if ep == id => Some((p.pid, msg)),
                _ => None,
            })
            .collect();
        for (sender, msg) in blocked {
            self.wake_sender(sender, Error::NoSuchProcess as u64);
            self.return_cap(sender, msg.cap);
        }
        // Interrupts bound to it have nowhere to go.
        self.irqs.retain(|_, b| b.ep != id);
    }

    /// What ending `pid` does to endpoints: its own go (see
    /// [`destroy_endpoint`](Self::destroy_endpoint)), its messages in other
    /// queues go (their capabilities return), the caller it owed a reply
    /// learns it, and a capability it was blocked sending returns.
    pub(super) fn end_endpoints(&mut self, pid: u64) {
        let owned: alloc::vec::Vec<u64> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.owner == pid)
            .map(|(&id, _)| id)
            .collect();
        for id in owned {
            self.destroy_endpoint(id);
        }
        let mut dropped: alloc::vec::Vec<Message> = alloc::vec::Vec::new();
        for e in self.endpoints.values_mut() {
            e.blocked.retain(|&p| p != pid);
            let mut kept = VecDeque::with_capacity(e.queue.len());
            for msg in e.queue.drain(..) {
                if msg.from == pid {
                    dropped.push(msg);
                } else {
                    kept.push_back(msg);
                }
            }
            e.queue = kept;
        }
        for msg in dropped {
            if let Some(cap) = msg.cap {
                self.drop_ref(cap.kind);
            }
        }
        let (owed, pending) = match self.procs.get_mut(pid) {
            Some(p) => {
                let pending = match p.wait.take() {
                    Some(Wait::Send { msg, .. }) => msg.cap,
                    _ => None,
                };
                (p.reply_to.take(), pending)
            }
            None => (None, None),
        };
        if let Some(caller) = owed {
            let waiting = self
                .procs
                .get(caller)
                .is_some_and(|c| matches!(c.wait, Some(Wait::Reply { .. })));
            if waiting {
                self.wake(caller, Error::NoSuchProcess as u64, [0; 5]);
            }
        }
        if let Some(cap) = pending {
            self.drop_ref(cap.kind);
        }
        // Room made in queues: senders blocked on them get in.
        let ids: alloc::vec::Vec<u64> = self.endpoints.keys().copied().collect();
        for id in ids {
            self.admit_blocked_senders(id);
        }
    }

    /// The endpoints against the processes: every owner is alive, every
    /// queued message's sender is alive, every queue within its bound,
    /// and every wait names something that can end it.
    pub(super) fn check_endpoints(&self) -> Result<(), alloc::string::String> {
        use alloc::format;
        for (id, e) in self.endpoints.iter() {
            if self.procs.get(e.owner).is_none() {
                return Err(format!("endpoint {id} outlived its owner {}", e.owner));
            }
            if e.queue.len() > abi::bounds::QUEUE {
                return Err(format!("endpoint {id} queues {} messages", e.queue.len()));
            }
            if let Some(m) = e.queue.iter().find(|m| self.procs.get(m.from).is_none()) {
                return Err(format!(
                    "endpoint {id} queues a message from dead pid {}",
                    m.from
                ));
            }
        }
        for (v, b) in &self.irqs {
            if self.procs.get(b.owner).is_none() {
                return Err(format!("vector {v:#x} bound by dead pid {}", b.owner));
            }
        }
        for p in self.procs.values() {
            match p.wait {
                Some(Wait::Recv { ep, .. }) | Some(Wait::Send { ep, .. })
                    if !self.endpoints.contains_key(&ep) =>
                {
                    return Err(format!("pid {} waits on dead endpoint {ep}", p.pid));
                }
                Some(Wait::Recv { ep, .. })
                    if self.endpoints.get(&ep).is_some_and(|e| e.owner != p.pid) =>
                {
                    return Err(format!(
                        "pid {} receives on endpoint {ep} it does not own",
                        p.pid
                    ));
                }
                Some(Wait::Reply { .. }) => {
                    let queued = self
                        .endpoints
                        .values()
                        .any(|e| e.queue.iter().any(|m| m.call && m.from == p.pid));
                    let owed = self.procs.values().any(|q| q.reply_to == Some(p.pid));
                    if !queued && !owed {
                        return Err(format!("pid {} waits for a reply nobody owes", p.pid));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// An interrupt vector bound to an endpoint: each interrupt on it becomes
/// a message (badge: the send capability's; words: the vector and how many
/// interrupts it stands for) from the driver that bound it to itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqBinding {
    /// The driver that bound it (ending it unbinds).
    pub owner: u64,
    /// Where its interrupts go.
    pub ep: u64,
    /// The send capability's badge.
    pub badge: u64,
    /// The device page (frame number) whose capability bound it: at most
    /// [`abi::bounds::IRQS_PER_DEVICE`] vectors each.
    pub device: u64,
    /// Interrupts that found the queue full: delivered as one message as
    /// soon as a `recv` makes room.
    pub pending: u64,
}

/// The vectors drivers may bind (below the timer's class, above the PICs').
pub const IRQ_VECTORS: core::ops::RangeInclusive<u8> = 0x40..=0xdf;

impl<P: Platform> Kernel<P> {
    /// `irq_bind(device, ep) -> vector`: a free vector whose interrupts go
    /// to the endpoint of send capability `ep`. Only a holder of a device
    /// capability may bind one (drivers: whoever drives a device programs
    /// its MSI with the vector); `OutOfMemory` when none is free.
    pub fn irq_bind(&mut self, pid: u64, device: Handle, ep: Handle) -> Result<u64, Error> {
        let p = self.caller(pid)?;
        let CapKind::Device { frame } = p.caps.get(device)?.kind else {
            return Err(Error::PermissionDenied);
        };
        if ep.raw() == 0 {
            // Unbind: the caller's vectors of this device are free again
            // (an interrupt on one now is spurious, blamed on nobody).
            let before = self.irqs.len();
            self.irqs
                .retain(|_, b| !(b.owner == pid && b.device == frame));
            return Ok((before - self.irqs.len()) as u64);
        }
        let (ep, badge) = self.send_target(pid, ep)?;
        if !self.endpoints.contains_key(&ep) {
            return Err(Error::NoSuchProcess);
        }
        // A device page is exclusive, so these are all the caller's.
        let bound = self.irqs.values().filter(|b| b.device == frame).count();
        if bound >= abi::bounds::IRQS_PER_DEVICE {
            return Err(Error::OutOfMemory);
        }
        let vector = IRQ_VECTORS
            .clone()
            .find(|v| !self.irqs.contains_key(v))
            .ok_or(Error::OutOfMemory)?;
        self.irqs.insert(
            vector,
            IrqBinding {
                owner: pid,
                ep,
                badge,
                device: frame,
                pending: 0,
            },
        );
        Ok(u64::from(vector))
    }

    /// An interrupt on `vector`: `None` if nobody bound it; else whether a
    /// blocked receiver woke (`Some(Some(pid))`). An interrupt whose
    /// message is still queued only adds to its count, so a queue never
    /// fills with interrupts; one that finds the queue full (others' messages)
    /// is kept as pending and comes with the next `recv`, never lost.
    pub fn irq_fire(&mut self, vector: u8) -> Option<Option<u64>> {
        let b = *self.irqs.get(&vector)?;
        let queued = self.endpoints.get_mut(&b.ep).and_then(|e| {
            e.queue
                .iter_mut()
                .find(|m| m.irq && m.words[0] == u64::from(vector))
        });
        if let Some(m) = queued {
            m.words[1] = m.words[1].saturating_add(1);
            return Some(None);
        }
        let msg = Message {
            badge: b.badge,
            words: [u64::from(vector), 1],
            cap: None,
            from: b.owner,
            call: false,
            irq: true,
        };
        match self.deliver(b.ep, msg) {
            Ok(woke) => Some(woke),
            // The endpoint is gone: the binding goes too.
            Err((Error::NoSuchProcess, _)) => {
                self.irqs.remove(&vector);
                Some(None)
            }
            // A full queue: kept as pending, delivered when there is room.
            Err(_) => {
                if let Some(b) = self.irqs.get_mut(&vector) {
                    b.pending = b.pending.saturating_add(1);
                }
                Some(None)
            }
        }
    }

    /// Interrupts for endpoint `ep` that found its queue full go in now,
    /// one message per vector with their count, while there is room.
    fn deliver_pending_irqs(&mut self, ep: u64) {
        let due: alloc::vec::Vec<(u8, IrqBinding)> = self
            .irqs
            .iter()
            .filter(|(_, b)| b.ep == ep && b.pending > 0)
            .map(|(&v, &b)| (v, b))
            .collect();
        for (vector, b) in due {
            let msg = Message {
                badge: b.badge,
                words: [u64::from(vector), b.pending],
                cap: None,
                from: b.owner,
                call: false,
                irq: true,
            };
            if self.enqueue(ep, msg).is_err() {
                return;
            }
            if let Some(b) = self.irqs.get_mut(&vector) {
                b.pending = 0;
            }
        }
    }

    /// Unbinds every vector `pid` bound (it ends).
    pub(super) fn end_irqs(&mut self, pid: u64) {
        self.irqs.retain(|_, b| b.owner != pid);
    }
}
