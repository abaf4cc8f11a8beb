//! Endpoints, the libOS way to talk and wait: an [`Endpoint`] is one the
//! program created (it receives on it), a [`SendCap`] a badged way to send
//! to one (minted by its owner, found by name with [`SendCap::lookup`], or
//! received in a message). Blocking is the kernel's: [`Endpoint::recv`]
//! waits up to a timeout, [`SendCap::call`] waits for the [`reply`].
//!
//! A message is two words and at most one capability ([`Handle`]): the
//! only way a capability reaches another process. Sending
//! a capability moves it: the caller's handle dies (and its mappings, as
//! with `frame_free`), which is why the calls that carry one are `unsafe`.
use crate::Error;
use abi::Handle;

/// A message as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    /// The badge of the send capability it came through (0 for a reply).
    pub badge: u64,
    /// The two words.
    pub words: [u64; 2],
    /// The capability that came with it, now the caller's.
    pub cap: Option<Handle>,
    /// A `call`: the receiver owes a [`reply`].
    pub call: bool,
    /// Made by the kernel for a bound interrupt (words: the vector, how
    /// many interrupts): no program can send one.
    pub irq: bool,
}

fn decode([rax, badge, w0, w1, cap, flags]: [u64; 6]) -> Result<Msg, Error> {
    Error::check(rax)?;
    Ok(Msg {
        badge,
        words: [w0, w1],
        cap: (cap != 0).then(|| Handle::from_raw(cap)),
        call: flags & abi::RECV_CALL != 0,
        irq: flags & abi::RECV_IRQ != 0,
    })
}

/// An endpoint this program owns (its receive capability); freed, with
/// everything queued on it, on drop.
#[derive(Debug)]
pub struct Endpoint {
    recv: Handle,
}

impl Endpoint {
    /// A new endpoint; with `publish`, others find it by this program's
    /// name ([`SendCap::lookup`]).
    pub fn create(publish: bool) -> Result<Endpoint, Error> {
        let (rax, rdx) = abi::raw::endpoint_create(publish);
        Error::check(rax)?;
        Ok(Endpoint {
            recv: Handle::from_raw(rdx),
        })
    }

    /// A send capability to it carrying `badge`.
    pub fn mint(&self, badge: u64) -> Result<SendCap, Error> {
        let (rax, rdx) = abi::raw::endpoint_mint(self.recv, badge);
        Error::check(rax)?;
        Ok(SendCap {
            handle: Handle::from_raw(rdx),
        })
    }

    /// The oldest message, waiting up to `timeout` timer ticks for one
    /// (0: `WouldBlock` at once; [`abi::FOREVER`]).
    pub fn recv(&self, timeout: u64) -> Result<Msg, Error> {
        decode(abi::raw::recv(self.recv, timeout))
    }

    /// Answers the call received last with two words, then waits (without
    /// a timeout) for the next message, in one crossing.
    pub fn reply_recv(&self, words: [u64; 2]) -> Result<Msg, Error> {
        // SAFETY: no capability moves (cap 0).
        decode(unsafe { abi::raw::reply_recv(self.recv, words[0], words[1], 0, 0) })
    }

    /// As [`reply_recv`](Self::reply_recv), the answer carrying capability
    /// `cap` (moved, or copied with `copy`).
    ///
    /// # Safety
    /// As [`SendCap::send_cap`].
    pub unsafe fn reply_recv_cap(
        &self,
        words: [u64; 2],
        cap: Handle,
        copy: bool,
    ) -> Result<Msg, Error> {
        let flags = if copy { abi::SEND_COPY } else { 0 };
        // SAFETY: the caller's contract.
        decode(unsafe { abi::raw::reply_recv(self.recv, words[0], words[1], cap.raw(), flags) })
    }

    /// The receive capability.
    pub fn handle(&self) -> Handle {
        self.recv
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: an endpoint capability has no mappings.
        let _ = unsafe { abi::raw::frame_free(self.recv) };
    }
}

/// A send capability (freed on drop).
#[derive(Debug)]
pub struct SendCap {
    handle: Handle,
}

impl SendCap {
    /// A send capability to the endpoint process `name` published, badged
    /// by the kernel with our pid.
    pub fn lookup(name: &str) -> Result<SendCap, Error> {
        let (rax, rdx) = abi::raw::endpoint_lookup(name.as_ptr() as u64, name.len() as u64);
        Error::check(rax)?;
        Ok(SendCap {
            handle: Handle::from_raw(rdx),
        })
    }

    /// Wraps a send capability received in a message.
    ///
    /// # Safety
    /// `handle` names a send capability the caller holds and nothing else
    /// frees.
    pub unsafe fn from_raw(handle: Handle) -> SendCap {
        SendCap { handle }
    }

    /// The handle (to send it on).
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Gives the handle up without freeing it.
    pub fn into_raw(self) -> Handle {
        let h = self.handle;
        core::mem::forget(self);
        h
    }

    /// Sends two words; a full queue is `WouldBlock` (or, with `block`, we
    /// wait for room).
    pub fn send(&self, words: [u64; 2], block: bool) -> Result<(), Error> {
        let flags = if block { abi::SEND_BLOCK } else { 0 };
        // SAFETY: no capability moves (cap 0).
        let (rax, _) = unsafe { abi::raw::send(self.handle, words[0], words[1], 0, flags) };
        Error::check(rax)
    }

    /// Sends two words and capability `cap`, moved (or copied with
    /// `copy`).
    ///
    /// # Safety
    /// When moved, `cap` dies with its mappings: no live reference may
    /// point into them.
    pub unsafe fn send_cap(&self, words: [u64; 2], cap: Handle, copy: bool) -> Result<(), Error> {
        let flags = if copy { abi::SEND_COPY } else { 0 };
        // SAFETY: the caller's contract.
        let (rax, _) = unsafe { abi::raw::send(self.handle, words[0], words[1], cap.raw(), flags) };
        Error::check(rax)
    }

    /// Sends two words and capability `cap` with `flags`:
    /// [`abi::SEND_COPY`], [`abi::send_rights`] (the capability travels
    /// with only those rights), [`abi::SEND_BLOCK`].
    ///
    /// # Safety
    /// As [`send_cap`](Self::send_cap).
    pub unsafe fn send_with(&self, words: [u64; 2], cap: Handle, flags: u64) -> Result<(), Error> {
        // SAFETY: the caller's contract.
        let (rax, _) = unsafe { abi::raw::send(self.handle, words[0], words[1], cap.raw(), flags) };
        Error::check(rax)
    }

    /// Sends two words and capability `cap` with `flags` (as
    /// [`send_with`](Self::send_with), but [`abi::SEND_BLOCK`]) and waits
    /// for the reply.
    ///
    /// # Safety
    /// As [`send_cap`](Self::send_cap).
    pub unsafe fn call_with(&self, words: [u64; 2], cap: Handle, flags: u64) -> Result<Msg, Error> {
        // SAFETY: the caller's contract.
        decode(unsafe { abi::raw::call(self.handle, words[0], words[1], cap.raw(), flags) })
    }

    /// Sends two words and waits for the reply.
    pub fn call(&self, words: [u64; 2]) -> Result<Msg, Error> {
        // SAFETY: no capability moves (cap 0).
        decode(unsafe { abi::raw::call(self.handle, words[0], words[1], 0, 0) })
    }

    /// Sends two words and capability `cap` (moved, or copied with `copy`)
    /// and waits for the reply.
    ///
    /// # Safety
    /// As [`send_cap`](Self::send_cap).
    pub unsafe fn call_cap(&self, words: [u64; 2], cap: Handle, copy: bool) -> Result<Msg, Error> {
        let flags = if copy { abi::SEND_COPY } else { 0 };
        // SAFETY: the caller's contract.
        decode(unsafe { abi::raw::call(self.handle, words[0], words[1], cap.raw(), flags) })
    }
}

impl Drop for SendCap {
    fn drop(&mut self) {
        // SAFETY: an endpoint capability has no mappings.
        let _ = unsafe { abi::raw::frame_free(self.handle) };
    }
}

/// Answers the call received last with two words.
pub fn reply(words: [u64; 2]) -> Result<(), Error> {
    // SAFETY: no capability moves (cap 0).
    let (rax, _) = unsafe { abi::raw::reply(words[0], words[1], 0, 0) };
    Error::check(rax)
}

/// Answers the call received last with two words and capability `cap`.
///
/// # Safety
/// As [`SendCap::send_cap`].
pub unsafe fn reply_cap(words: [u64; 2], cap: Handle, copy: bool) -> Result<(), Error> {
    let flags = if copy { abi::SEND_COPY } else { 0 };
    // SAFETY: the caller's contract.
    let (rax, _) = unsafe { abi::raw::reply(words[0], words[1], cap.raw(), flags) };
    Error::check(rax)
}

/// Binds a free interrupt vector to the endpoint of `ep`: each interrupt
/// becomes a message whose words are the vector and a count. `device` is
/// a device capability the caller holds (drivers only). Program the
/// device's MSI with address [`abi::MSI_ADDRESS`] and data = the vector.
pub fn irq_bind(device: Handle, ep: &SendCap) -> Result<u8, Error> {
    let (rax, rdx) = abi::raw::irq_bind(device, ep.handle);
    Error::check(rax)?;
    Ok(rdx as u8)
}

/// A second capability to what `cap` names, with only `rights` (a
/// non-empty subset of its own, else `InvalidArgument`/`PermissionDenied`;
/// `cap` needs `TRANSFER`): sent to ourselves as a copy on a fresh
/// endpoint (the way to drop rights, say to map a page read-only).
pub fn copy_with(cap: Handle, rights: abi::Rights) -> Result<Handle, Error> {
    let ep = Endpoint::create(false)?;
    let to = ep.mint(0)?;
    // SAFETY: a copy: `cap` and its mappings stay.
    unsafe { to.send_with([0, 0], cap, abi::SEND_COPY | abi::send_rights(rights)) }?;
    ep.recv(0)?.cap.ok_or(Error::InvalidArgument)
}

/// Releases every vector the caller bound through device capability
/// `device` ([`irq_bind`]); returns how many. An interrupt on one of them
/// is then spurious (counted by the kernel, blamed on nobody).
pub fn irq_unbind(device: Handle) -> Result<u64, Error> {
    let (rax, rdx) = abi::raw::irq_bind(device, Handle::from_raw(0));
    Error::check(rax)?;
    Ok(rdx)
}
