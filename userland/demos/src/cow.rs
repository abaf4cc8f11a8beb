//! Copy-on-write as the `cow` demos build it from `protect`, the exception
//! handler and nothing else: [`Copies`] answers a write fault on a shared,
//! read-only page by replacing the page with a private writable copy, and
//! keeps the copies' handles so that the program can give them back.
use abi::MapFlags;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use libos::exception::{Action, ExceptionFrame};
use libos::{sys, Error, Handle};

const PAGE: u64 = 4096;

/// Up to `N` private copies made by [`Copies::on_write`].
pub struct Copies<const N: usize> {
    handles: [AtomicU64; N],
    count: AtomicU64,
}

impl<const N: usize> Default for Copies<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Copies<N> {
    /// None yet.
    pub const fn new() -> Self {
        Self {
            handles: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
        }
    }

    /// How many copies were made.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Forgets the copies (after [`Copies::free_all`]).
    pub fn reset(&self) {
        self.count.store(0, Relaxed);
    }

    /// The handler's body: a write (error bits 0 and 1: present, write) in
    /// a page for which `shared` holds becomes a private copy, made
    /// through the scratch address `temp`, and the write is resumed;
    /// anything else, or a copy past `N`, kills the program.
    pub fn on_write(&self, f: &ExceptionFrame, shared: impl Fn(u64) -> bool, temp: u64) -> Action {
        let page = f.cr2 & !(PAGE - 1);
        if f.vector != 14 || f.error & 3 != 3 || !shared(page) {
            return Action::Kill;
        }
        let n = self.count() as usize;
        if n == N {
            return Action::Kill;
        }
        match private_copy(page, temp) {
            Ok(h) => {
                self.handles[n].store(h.raw(), Relaxed);
                self.count.store(n as u64 + 1, Relaxed);
                Action::Resume
            }
            Err(_) => Action::Kill,
        }
    }

    /// Frees every copy made (unmapping them) and forgets them.
    ///
    /// # Safety
    /// Nothing may still refer into the pages the copies are mapped at.
    pub unsafe fn free_all(&self) -> Result<(), Error> {
        for h in self.handles.iter().take(self.count() as usize) {
            // SAFETY: the caller promises nothing refers into the copy.
            unsafe { sys::frame_free(Handle::from_raw(h.load(Relaxed)))? };
        }
        self.reset();
        Ok(())
    }
}

/// Replaces the shared page at `page` by a private writable copy, filled
/// through `temp` (an unused page-aligned address); returns its handle.
fn private_copy(page: u64, temp: u64) -> Result<Handle, Error> {
    let h = sys::frame_alloc()?;
    sys::map(h, temp, MapFlags::WRITE)?;
    // SAFETY: `page` is mapped readable, `temp` writable (just mapped);
    // the interrupted code is stopped and holds no reference into either.
    unsafe {
        core::ptr::copy_nonoverlapping(page as *const u8, temp as *mut u8, PAGE as usize);
        sys::unmap(temp)?;
        sys::unmap(page)?;
    }
    sys::map(h, page, MapFlags::WRITE)?;
    Ok(h)
}
