//! Heap accounting: how many bytes each worker holds, so that an agent that
//! grows past `restartAboveMemoryMib` can be restarted between tasks.
//!
//! # Why a global allocator
//!
//! A process-wide figure (RSS) cannot say *which* agent grew, and Rust has no
//! per-task heap. [`AccountingAllocator`] wraps [`System`] and charges every
//! allocation to an [`Account`]: the one current on the allocating thread
//! when it was made. The engine makes each worker's account current while it
//! polls that worker's job futures (see [`Account::scope`]), so what a job
//! allocates and keeps (in the worker struct, in a cache) stays charged to
//! that worker until it is freed, whoever frees it.
//!
//! Install it in the program's main crate (the `troupe` binary does):
//!
//! ```
//! #[global_allocator]
//! static A: troupe::alloc::AccountingAllocator = troupe::alloc::AccountingAllocator;
//!
//! fn main() {
//!     assert!(troupe::alloc::installed());
//!     let account = troupe::alloc::Account::new();
//!     let kept = {
//!         let _in = account.enter();
//!         vec![0u8; 4096]
//!     };
//!     assert_eq!(account.live_bytes(), 4096);
//!     drop(kept);
//!     assert_eq!(account.live_bytes(), 0);
//! }
//! ```
//!
//! Without it, accounts stay at zero, [`installed`] is `false`, and the
//! runtime refuses configs that set `restartAboveMemoryMib`.
//!
//! # How
//!
//! - Each allocation carries a header of `max(align, 16)` bytes in front of
//!   the pointer handed out, so the pointer keeps the alignment asked for.
//!   The 8 bytes right before the pointer hold the owner's account id.
//! - `alloc` adds the requested size to the owner's live-bytes counter (a
//!   static array of [`SLOTS`] atomics, one cache line each); `dealloc`
//!   subtracts it from the account named in the header, so memory freed by
//!   another actor or thread is released from the right owner; `realloc`
//!   keeps the owner. Counted are the bytes asked for, not the header nor
//!   the system allocator's own overhead.
//! - Account 0 is "unaccounted": everything allocated outside any scope. Its
//!   counter is never touched, so code outside worker scopes pays only for
//!   the header and one thread-local read.
//! - The current account is a `const`-initialised thread-local `Cell<u32>`:
//!   reading it never allocates (no lazy initialisation, no destructor).
//!   Should it be unreadable (thread teardown) the allocation goes to 0.
//! - Nothing in the allocator path allocates, locks or panics.
//!
//! Limits: memory a worker's job gets from another actor (a model response
//! built by a provider actor) is charged to where it was allocated, not to
//! the worker; tasks a job spawns with `tokio::spawn` run outside the scope
//! unless wrapped in [`Account::scope`] themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// How many accounts can be told apart (slot 0, the probe slot and the
/// shared overflow slot included).
pub const SLOTS: usize = 4096;

/// Smallest header in front of each allocation, in bytes (also the least
/// alignment of the underlying block).
pub(crate) const HEADER: usize = 16;

/// What to add to a program so accounting works; quoted in the errors of
/// settings that need it.
pub(crate) const INSTALL_HINT: &str = "add `#[global_allocator] static A: troupe::alloc::AccountingAllocator = troupe::alloc::AccountingAllocator;` to the program's main crate (the `troupe` binary has it)";

/// Allocations outside any account.
const UNACCOUNTED: u32 = 0;
/// Reserved for [`installed`]'s probe; never handed out.
const PROBE: u32 = 1;
/// The first slot [`Account::new`] may hand out.
const FIRST: usize = 2;
/// Shared by every account made once all others are taken.
const OVERFLOW: u32 = (SLOTS - 1) as u32;

/// One account's counter, alone on its cache line so that workers on
/// different threads do not slow each other down.
#[repr(align(64))]
struct Slot {
    /// Bytes allocated and not yet freed (may dip below zero for a moment
    /// when a slot's earlier owner's memory is freed; read clamped).
    live: AtomicIsize,
    /// Held by an [`Account`].
    claimed: AtomicBool,
}

static ACCOUNTS: [Slot; SLOTS] = [const {
    Slot {
        live: AtomicIsize::new(0),
        claimed: AtomicBool::new(false),
    }
}; SLOTS];

thread_local! {
    /// The account allocations on this thread are charged to.
    static CURRENT: Cell<u32> = const { Cell::new(UNACCOUNTED) };
}

/// The current account of this thread; 0 when the thread-local is gone.
fn current() -> u32 {
    CURRENT.try_with(Cell::get).unwrap_or(UNACCOUNTED)
}

/// Makes `id` current; returns the account it replaces.
fn set_current(id: u32) -> u32 {
    CURRENT.try_with(|c| c.replace(id)).unwrap_or(UNACCOUNTED)
}

/// Adds `delta` bytes to account `id` (nothing for 0 or an id out of range).
fn charge(id: u32, delta: isize) {
    if id == UNACCOUNTED {
        return;
    }
    if let Some(slot) = ACCOUNTS.get(id as usize) {
        slot.live.fetch_add(delta, Ordering::Relaxed);
    }
}

fn live_of(id: u32) -> u64 {
    ACCOUNTS.get(id as usize).map_or(0, |s| {
        u64::try_from(s.live.load(Ordering::Relaxed)).unwrap_or(0)
    })
}

/// The header in front of an allocation of alignment `align`.
fn header_for(align: usize) -> usize {
    align.max(HEADER)
}

/// The block asked of the inner allocator for `layout`: header plus payload, aligned
/// to at least [`HEADER`] so that the owner tag is aligned too. `None` on
/// overflow.
fn outer_layout(layout: Layout) -> Option<(Layout, usize)> {
    let header = header_for(layout.align());
    let size = layout.size().checked_add(header)?;
    let outer = Layout::from_size_align(size, layout.align().max(HEADER)).ok()?;
    Some((outer, header))
}

/// Writes the owner in front of the payload at `base + header`; returns the
/// payload pointer.
///
/// # Safety
/// `base` is a live block of at least `header` bytes, aligned to `HEADER`,
/// and `header >= HEADER`.
unsafe fn tag(base: *mut u8, header: usize, owner: u32) -> *mut u8 {
    // SAFETY: `header` is within the block; the payload is aligned to
    // `max(align, 16)`, so the 8 bytes before it are aligned for a u64.
    unsafe {
        let payload = base.add(header);
        payload.sub(8).cast::<u64>().write(u64::from(owner));
        payload
    }
}

/// The owner written in front of `payload`.
///
/// # Safety
/// `payload` was returned by [`AccountingAllocator`] and is not yet freed.
unsafe fn owner_of(payload: *mut u8) -> u32 {
    // SAFETY: the caller's promise; see `tag`.
    let raw = unsafe { payload.sub(8).cast::<u64>().read() };
    u32::try_from(raw).unwrap_or(UNACCOUNTED)
}

/// The global allocator that charges each allocation to the account current
/// on its thread (see the [module docs](self)). Wraps [`System`]; see
/// [`AccountingAllocatorOver`] to wrap another allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountingAllocator;

/// [`AccountingAllocator`] over another allocator `A` (the `troupe` binary
/// built with the `mimalloc` feature uses mimalloc, whose thread-local heaps
/// hold up better than glibc's bins with 1,000 tasks in flight). For
/// example: `#[global_allocator] static A: AccountingAllocatorOver<MiMalloc>
/// = AccountingAllocatorOver(MiMalloc);`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountingAllocatorOver<A>(pub A);

// SAFETY: delegates to `AccountingAllocatorOver<System>`, whose contract is
// stated there.
unsafe impl GlobalAlloc for AccountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's promises, passed on.
        unsafe { AccountingAllocatorOver(System).alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { AccountingAllocatorOver(System).alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`; the block came from the same wrapper.
        unsafe { AccountingAllocatorOver(System).dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe { AccountingAllocatorOver(System).realloc(ptr, layout, new_size) }
    }
}

/// A block for `layout` from `allocate` (given the outer layout: header plus
/// payload), charged to the current account and tagged with it; the
/// payload pointer, or null.
///
/// # Safety
/// `allocate` returns null or a fresh block of the layout it is given.
unsafe fn charged(layout: Layout, allocate: impl FnOnce(Layout) -> *mut u8) -> *mut u8 {
    let Some((outer, header)) = outer_layout(layout) else {
        return std::ptr::null_mut();
    };
    let base = allocate(outer);
    if base.is_null() {
        return base;
    }
    let owner = current();
    charge(owner, layout.size() as isize);
    // SAFETY: fresh block of `outer.size() >= header` bytes, aligned to 16
    // (the caller's promise about `allocate`).
    unsafe { tag(base, header, owner) }
}

// SAFETY: every block comes from the inner allocator with a layout that holds the
// header and the payload and whose alignment is at least the one asked for;
// the payload pointer handed out is `base + header`, with `header` a
// multiple of the alignment asked for, and the same `header` is subtracted
// back (computed again from the same layout) before a block goes back to
// the inner allocator. No method allocates, locks or panics (beyond what
// the inner allocator does).
unsafe impl<A: GlobalAlloc> GlobalAlloc for AccountingAllocatorOver<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `outer` has a non-zero size (it holds the header).
        unsafe { charged(layout, |outer| self.0.alloc(outer)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`; the tag lies in the header, not the payload.
        unsafe { charged(layout, |outer| self.0.alloc_zeroed(outer)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((outer, header)) = outer_layout(layout) else {
            // Cannot happen: the same layout was accepted by `alloc`.
            return;
        };
        // SAFETY: `ptr` came from `alloc` with this layout (the caller's
        // promise), so its owner is in front of it and the block starts
        // `header` bytes earlier.
        unsafe {
            charge(owner_of(ptr), -(layout.size() as isize));
            self.0.dealloc(ptr.sub(header), outer);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some((outer, header)), Some(new_outer_size)) = (
            outer_layout(layout),
            new_size.checked_add(header_for(layout.align())),
        ) else {
            return std::ptr::null_mut();
        };
        if Layout::from_size_align(new_outer_size, outer.align()).is_err() {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `alloc` with `layout`; the block starts
        // `header` bytes before it. the inner `realloc` keeps the block's
        // contents, header included, and its alignment.
        unsafe {
            let owner = owner_of(ptr);
            let base = self.0.realloc(ptr.sub(header), outer, new_outer_size);
            if base.is_null() {
                return base;
            }
            charge(
                owner,
                (new_size as isize).wrapping_sub(layout.size() as isize),
            );
            base.add(header)
        }
    }
}

/// Whether [`AccountingAllocator`] is the program's global allocator.
///
/// Found out once, by allocating a small box under a probe account that
/// nothing else uses and seeing whether its counter moved: direct calls on
/// an `AccountingAllocator` value (as in tests) do not fool it.
pub fn installed() -> bool {
    // 0: not known yet; 1: installed. Only a yes is cached: a no is cheap
    // to find again, and caching one seen on a thread whose thread-local
    // is already gone would be wrong for good.
    static STATE: AtomicU8 = AtomicU8::new(0);
    // Probes run one at a time: two at once would see each other's box in
    // the probe account's counter and could conclude "no".
    static PROBING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if STATE.load(Ordering::Relaxed) == 1 {
        return true;
    }
    let _one_at_a_time = PROBING.lock().unwrap_or_else(|e| e.into_inner());
    if STATE.load(Ordering::Relaxed) == 1 {
        return true;
    }
    let before = live_of(PROBE);
    let previous = set_current(PROBE);
    let probe = std::hint::black_box(Box::new([0u8; 64]));
    let during = live_of(PROBE);
    drop(probe);
    set_current(previous);
    let yes = during > before;
    if yes {
        STATE.store(1, Ordering::Relaxed);
    }
    yes
}

/// What was allocated under `id` and not yet freed, in bytes (0 for the
/// unaccounted slot, which is not counted).
fn live_bytes_of(id: u32) -> u64 {
    if id == UNACCOUNTED {
        0
    } else {
        live_of(id)
    }
}

/// A claim on one slot, released when the last [`Account`] clone goes.
struct Claim {
    id: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.id != OVERFLOW {
            if let Some(slot) = ACCOUNTS.get(self.id as usize) {
                slot.claimed.store(false, Ordering::Release);
            }
        }
    }
}

/// A heap account: what is allocated while it is current (inside
/// [`scope`](Self::scope) or [`enter`](Self::enter)) is charged to it until
/// freed. Cheap to clone; clones are the same account.
///
/// Slots: [`Account::new`] takes a free slot with nothing left charged to it;
/// failing that, any free slot (whose leftovers — memory of an earlier owner
/// not yet freed — it then inherits); failing that (all [`SLOTS`] held), the
/// last slot, shared by every account made while the others are taken. A
/// slot is free again when the last clone of its account is dropped.
#[derive(Clone)]
pub struct Account {
    claim: Arc<Claim>,
}

impl Account {
    /// A new account (see the type's docs for how slots are handed out).
    pub fn new() -> Self {
        let id = Self::claim(true)
            .or_else(|| Self::claim(false))
            .unwrap_or(OVERFLOW);
        Account {
            claim: Arc::new(Claim { id }),
        }
    }

    /// Claims a free slot; with `empty`, only one with no live bytes.
    fn claim(empty: bool) -> Option<u32> {
        (FIRST..OVERFLOW as usize).find_map(|i| {
            let slot = &ACCOUNTS[i];
            if empty && slot.live.load(Ordering::Relaxed) != 0 {
                return None;
            }
            slot.claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .ok()
                .and_then(|_| u32::try_from(i).ok())
        })
    }

    /// The slot this account counts in.
    pub fn id(&self) -> u32 {
        self.claim.id
    }

    /// Whether this account shares the overflow slot with others (every
    /// other slot was taken when it was made).
    pub fn is_shared(&self) -> bool {
        self.claim.id == OVERFLOW
    }

    /// Bytes allocated under this account and not yet freed. Always 0 when
    /// the accounting allocator is not [`installed`].
    pub fn live_bytes(&self) -> u64 {
        live_bytes_of(self.claim.id)
    }

    /// Makes this account current on this thread until the guard drops;
    /// the previous one is current again afterwards.
    pub fn enter(&self) -> Entered<'_> {
        Entered {
            previous: set_current(self.claim.id),
            _account: PhantomData,
        }
    }

    /// Wraps `future` so that this account is current while it is polled
    /// (on whatever thread polls it), the previous one again between polls.
    pub fn scope<F: Future>(&self, future: F) -> Accounted<F> {
        Accounted {
            account: self.clone(),
            inner: future,
        }
    }
}

impl Default for Account {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.claim.id)
            .field("live_bytes", &self.live_bytes())
            .finish()
    }
}

/// While alive, an [`Account`] is current on this thread (see
/// [`Account::enter`]). Not `Send`: it restores the thread it was made on.
#[must_use = "the account is current only while the guard lives"]
pub struct Entered<'a> {
    previous: u32,
    _account: PhantomData<(&'a Account, *const ())>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        set_current(self.previous);
    }
}

impl fmt::Debug for Entered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entered")
            .field("previous", &self.previous)
            .finish()
    }
}

/// A future polled with its [`Account`] current; see [`Account::scope`].
#[must_use = "futures do nothing unless polled"]
pub struct Accounted<F> {
    account: Account,
    inner: F,
}

impl<F> Accounted<F> {
    /// The account it runs under.
    pub fn account(&self) -> &Account {
        &self.account
    }
}

impl<F: Future> Future for Accounted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is pinned structurally: it is never moved out of
        // `Accounted`, which has no `Drop` impl and is `Unpin` only when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = this.account.enter();
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        inner.poll(cx)
    }
}

impl<F> fmt::Debug for Accounted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounted")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Wraps `future` so that no account is current while it is polled: for
/// work a worker does on behalf of something shared and long-lived (the
/// store's page cache above all), which would otherwise be charged to the
/// worker and make it look like it grew, though restarting it frees none of
/// it.
pub fn unaccounted<F: Future>(future: F) -> Unaccounted<F> {
    Unaccounted { inner: future }
}

/// A future polled with no account current; see [`unaccounted`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Unaccounted<F> {
    inner: F,
}

impl<F: Future> Future for Unaccounted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is pinned structurally, as in `Accounted`.
        let this = unsafe { self.get_unchecked_mut() };
        // Restores the account of the caller, also when `inner` panics.
        struct Restore(u32);
        impl Drop for Restore {
            fn drop(&mut self) {
                set_current(self.0);
            }
        }
        let _restore = Restore(set_current(UNACCOUNTED));
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The global allocator of this test binary is `System`, so these call
    //! the `GlobalAlloc` methods of an `AccountingAllocator` value directly.

    use super::*;

    const A: AccountingAllocator = AccountingAllocator;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn pointers_keep_their_alignment_and_carry_their_owner() {
        let account = Account::new();
        for align in [1, 2, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 16, 100, 5000] {
                let l = layout(size, align);
                let p = {
                    let _in = account.enter();
                    unsafe { A.alloc(l) }
                };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align}");
                assert_eq!(p as usize % HEADER, 0, "the tag is aligned");
                assert_eq!(unsafe { owner_of(p) }, account.id());
                // The whole payload is writable.
                unsafe { p.write_bytes(0xab, size) };
                assert_eq!(account.live_bytes(), size as u64);
                unsafe { A.dealloc(p, l) };
                assert_eq!(account.live_bytes(), 0);
            }
        }
    }

    #[test]
    fn the_header_is_sixteen_bytes_or_the_alignment() {
        assert_eq!(header_for(1), 16);
        assert_eq!(header_for(16), 16);
        assert_eq!(header_for(64), 64);
        let (outer, header) = outer_layout(layout(10, 8)).unwrap();
        assert_eq!((outer.size(), outer.align(), header), (26, 16, 16));
        let (outer, header) = outer_layout(layout(10, 128)).unwrap();
        assert_eq!((outer.size(), outer.align(), header), (138, 128, 128));
    }

    #[test]
    fn memory_freed_elsewhere_is_released_from_its_owner() {
        let owner = Account::new();
        let other = Account::new();
        let l = layout(1000, 8);
        let p = {
            let _in = owner.enter();
            (unsafe { A.alloc(l) }) as usize
        };
        assert_eq!(owner.live_bytes(), 1000);
        std::thread::spawn(move || {
            let _in = other.enter();
            unsafe { A.dealloc(p as *mut u8, l) };
            assert_eq!(other.live_bytes(), 0, "not charged to the freer");
        })
        .join()
        .unwrap();
        assert_eq!(owner.live_bytes(), 0);
    }

    #[test]
    fn realloc_keeps_the_owner_and_the_contents() {
        let owner = Account::new();
        let stranger = Account::new();
        for align in [8, 64] {
            let l = layout(100, align);
            let p = {
                let _in = owner.enter();
                unsafe { A.alloc(l) }
            };
            unsafe { p.write_bytes(7, 100) };
            let q = {
                let _in = stranger.enter();
                unsafe { A.realloc(p, l, 100_000) }
            };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0);
            assert_eq!(unsafe { owner_of(q) }, owner.id());
            assert_eq!(unsafe { std::slice::from_raw_parts(q, 100) }, &[7u8; 100]);
            assert_eq!(owner.live_bytes(), 100_000);
            assert_eq!(stranger.live_bytes(), 0);
            let r = unsafe { A.realloc(q, layout(100_000, align), 10) };
            assert_eq!(owner.live_bytes(), 10);
            unsafe { A.dealloc(r, layout(10, align)) };
            assert_eq!(owner.live_bytes(), 0);
        }
    }

    #[test]
    fn zeroed_allocations_are_zero_and_counted() {
        let account = Account::new();
        let l = layout(4096, 32);
        let p = {
            let _in = account.enter();
            unsafe { A.alloc_zeroed(l) }
        };
        assert!(unsafe { std::slice::from_raw_parts(p, 4096) }
            .iter()
            .all(|&b| b == 0));
        assert_eq!(account.live_bytes(), 4096);
        unsafe { A.dealloc(p, l) };
        assert_eq!(account.live_bytes(), 0);
    }

    #[test]
    fn sizes_that_overflow_with_the_header_fail_cleanly() {
        let l = layout(isize::MAX as usize - 8, 1);
        assert!(unsafe { A.alloc(l) }.is_null());
        let p = unsafe { A.alloc(layout(8, 8)) };
        assert!(unsafe { A.realloc(p, layout(8, 8), isize::MAX as usize - 4) }.is_null());
        unsafe { A.dealloc(p, layout(8, 8)) };
    }

    #[test]
    fn outside_any_account_nothing_is_counted() {
        let watcher = Account::new();
        let l = layout(64, 8);
        let p = unsafe { A.alloc(l) };
        assert_eq!(unsafe { owner_of(p) }, UNACCOUNTED);
        assert_eq!(watcher.live_bytes(), 0);
        unsafe { A.dealloc(p, l) };
    }

    #[test]
    fn enter_nests_and_restores() {
        let a = Account::new();
        let b = Account::new();
        assert_eq!(current(), UNACCOUNTED);
        {
            let _a = a.enter();
            assert_eq!(current(), a.id());
            {
                let _b = b.enter();
                assert_eq!(current(), b.id());
            }
            assert_eq!(current(), a.id());
        }
        assert_eq!(current(), UNACCOUNTED);
    }

    #[test]
    fn a_scoped_future_has_its_account_current_only_while_polled() {
        let a = Account::new();
        let id = a.id();
        let seen = futures::executor::block_on(a.scope(async move {
            let first = current();
            futures::future::ready(()).await;
            (first, current())
        }));
        assert_eq!(seen, (id, id));
        assert_eq!(current(), UNACCOUNTED);
    }

    #[test]
    fn an_unaccounted_future_inside_a_scope_charges_nobody_and_restores_the_scope() {
        let a = Account::new();
        let id = a.id();
        let seen = futures::executor::block_on(a.scope(async move {
            let inner = unaccounted(async {
                let first = current();
                futures::future::ready(()).await;
                (first, current())
            })
            .await;
            (inner, current())
        }));
        assert_eq!(seen, ((UNACCOUNTED, UNACCOUNTED), id));
        assert_eq!(current(), UNACCOUNTED);
    }

    #[test]
    fn accounts_get_their_own_slots_and_free_them_when_dropped() {
        let a = Account::new();
        let b = a.clone();
        let c = Account::new();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert!(a.id() >= FIRST as u32 && !a.is_shared());
        assert!(ACCOUNTS[a.id() as usize].claimed.load(Ordering::Acquire));
        let id = a.id();
        drop(a);
        assert!(
            ACCOUNTS[id as usize].claimed.load(Ordering::Acquire),
            "a clone still holds it"
        );
    }

    #[test]
    fn the_allocator_is_not_installed_in_this_test_binary() {
        assert!(!installed());
        assert!(!installed(), "the answer is kept");
    }
}
