//! The heap bytes a query's work allocates, counted where they are allocated.
//!
//! DataFusion's memory pool only knows what its operators choose to reserve: a function
//! result, an accumulator's strings or the batches of a scan are allocated without asking it.
//! So the server's global allocator is [`Counting`]: while a statement's work runs, a
//! thread-local pointer names the statement's [`Account`], and every allocation and free on
//! that thread is added to it. The statement's task, every operator stream that runs on a
//! task of its own (crate users put a guard over them) and the hot scans' blocking readers
//! run [`Account::charged`]; all accounts of the server add up in one [`QueryHeap`], which is
//! held to the same limit as the pool (`limits.query_memory_bytes`). A statement whose work
//! finds the heap over the limit fails with [`Error::InvalidParameter`], like a query the pool
//! refuses.
//!
//! What is counted is what the statement's work allocated minus what it freed, on the
//! statement's threads, while it ran: memory freed on another thread (the response's batches
//! after they are written) is not credited, memory of the statement freed by another
//! statement's work is credited to that one. Without [`Counting`] installed (the test
//! binaries, an embedding) nothing is counted and only the pool holds.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::execution::TaskContext;

use crate::error::{Error, Result};

thread_local! {
    /// The account this thread's allocations are added to (null: none). Const-initialised
    /// and without a destructor, so the allocator can read it at any time, also while the
    /// thread's other locals are being torn down.
    static CURRENT: Cell<*const Account> = const { Cell::new(std::ptr::null()) };
}

fn charge(bytes: isize) {
    let _ = CURRENT.try_with(|current| {
        let account = current.get();
        if !account.is_null() {
            // SAFETY: the pointer is set only by `Account::charged`, which holds a reference
            // to the account for as long as it is set and restores the previous value after.
            unsafe { (*account).own.fetch_add(bytes, Ordering::Relaxed) };
        }
    });
}

/// `f` of the account of the statement whose work this thread is running, if any.
fn with_current<R>(f: impl FnOnce(&Account) -> R) -> Option<R> {
    let account = CURRENT
        .try_with(|current| current.get())
        .unwrap_or(std::ptr::null());
    // SAFETY: as in `charge`: valid while it is the thread's current account.
    (!account.is_null()).then(|| f(unsafe { &*account }))
}

/// `limits.query_memory_bytes`, on a thread running a statement's work.
pub fn current_limit() -> Option<usize> {
    with_current(Account::limit)
}

/// [`Account::check`] of the statement whose work this thread is running (Ok outside any):
/// for code that builds a large value a piece at a time inside one batch, where no batch
/// check can see it (a cumulative `string_agg` window builds one value per row, together
/// the square of the rows).
pub fn check_current() -> Result<()> {
    with_current(Account::check).unwrap_or(Ok(()))
}

/// A global allocator that adds each allocation of a thread running a statement's work to
/// that statement's [`Account`] (one thread-local read per allocation otherwise).
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded to the wrapped allocator unchanged; counting only reads a
// thread-local and adds to an atomic, and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            charge(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            charge(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        charge(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            charge(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// The bytes all running statements' accounts hold together, and the most they may hold.
#[derive(Debug)]
pub struct QueryHeap {
    used: AtomicIsize,
    limit: usize,
    /// Accounts alive (statements running, or their work still being dropped).
    accounts: AtomicUsize,
}

impl QueryHeap {
    pub fn new(limit: usize) -> Arc<QueryHeap> {
        Arc::new(QueryHeap {
            used: AtomicIsize::new(0),
            limit,
            accounts: AtomicUsize::new(0),
        })
    }

    /// Bytes the running statements hold (as of their last guarded step).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed).max(0) as usize
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One statement's counted bytes. Kept in its DataFusion session's config (an extension),
/// so every operator of its plans finds it in their `TaskContext`.
#[derive(Debug)]
pub struct Account {
    heap: Arc<QueryHeap>,
    /// Bytes allocated minus bytes freed by the statement's work so far.
    own: AtomicIsize,
    /// The part of `own` already added to the heap.
    published: AtomicIsize,
}

impl Account {
    pub fn new(heap: &Arc<QueryHeap>) -> Arc<Account> {
        heap.accounts.fetch_add(1, Ordering::Relaxed);
        Arc::new(Account {
            heap: heap.clone(),
            own: AtomicIsize::new(0),
            published: AtomicIsize::new(0),
        })
    }

    /// The account of the statement a task belongs to, if its session has one.
    pub fn of(ctx: &TaskContext) -> Option<Arc<Account>> {
        ctx.session_config().get_extension::<Account>()
    }

    /// Run `f` with this thread's allocations added to this account (nesting allowed).
    pub fn charged<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|current| current.replace(self));
        // Restored also when `f` panics (DataFusion turns some panics into errors).
        struct Restore(*const Account);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| current.set(self.0));
            }
        }
        let restore = Restore(previous);
        let result = f();
        drop(restore);
        self.publish();
        result
    }

    /// Add what this account counted since the last time to the heap.
    fn publish(&self) {
        let now = self.own.load(Ordering::Relaxed);
        let before = self.published.swap(now, Ordering::Relaxed);
        if now != before {
            self.heap.used.fetch_add(now - before, Ordering::Relaxed);
        }
    }

    /// The most all running statements may hold together (`limits.query_memory_bytes`).
    pub fn limit(&self) -> usize {
        self.heap.limit
    }

    /// Count `bytes` this account holds without having allocated them under it (a finished
    /// statement's results, kept until the response is rendered).
    pub fn hold(&self, bytes: usize) {
        self.own.fetch_add(bytes as isize, Ordering::Relaxed);
    }

    /// Bytes this statement's work holds (allocated minus freed while it ran).
    pub fn bytes(&self) -> isize {
        self.own.load(Ordering::Relaxed)
    }

    /// An error when the statements together hold more than the limit and this one holds at
    /// least its share of what they hold: the large statements stop, the small ones that
    /// happen to run beside them go on.
    pub fn check(&self) -> Result<()> {
        self.publish();
        let used = self.heap.used();
        if used <= self.heap.limit {
            return Ok(());
        }
        let share = used / self.heap.accounts.load(Ordering::Relaxed).max(1);
        let own = self.bytes();
        if own > 0 && own as usize >= share {
            return Err(over_limit(own, self.heap.limit));
        }
        Ok(())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let published = self.published.load(Ordering::Relaxed);
        self.heap.used.fetch_sub(published, Ordering::Relaxed);
        self.heap.accounts.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Says what this statement held, never what the others hold (they may be other users').
fn over_limit(own: isize, limit: usize) -> Error {
    Error::InvalidParameter(format!(
        "the query needs more memory than the server allows (limits.query_memory_bytes = {limit} bytes \
         for all running queries; this one held {own} bytes)"
    ))
}

/// A future whose every poll is [`Account::charged`]: the statement's task itself.
pub struct Charged<F> {
    account: Arc<Account>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Charged<F> {
    pub fn new(account: Arc<Account>, inner: F) -> Charged<F> {
        Charged {
            account,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Charged<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let account = this.account.clone();
        account.charged(|| this.inner.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_add_up_in_the_heap_and_leave_it_when_dropped() {
        let heap = QueryHeap::new(100);
        let a = Account::new(&heap);
        // Without the counting allocator installed (this test binary), charge by hand.
        a.charged(|| charge(60));
        assert_eq!(a.bytes(), 60);
        assert_eq!(heap.used(), 60);
        assert!(a.check().is_ok());
        let b = Account::new(&heap);
        b.charged(|| b.charged(|| charge(50)));
        assert_eq!(heap.used(), 110, "nested charging publishes once");
        assert!(
            a.check().is_err(),
            "over the limit, the statement holding more than its share stops"
        );
        assert!(
            b.check().is_ok(),
            "the one holding less than its share goes on"
        );
        drop(b);
        assert_eq!(heap.used(), 60);
        drop(a);
        assert_eq!(heap.used(), 0);
        charge(1_000);
        let c = Account::new(&heap);
        assert_eq!(c.bytes(), 0, "a thread outside any account counts nowhere");
    }
}
