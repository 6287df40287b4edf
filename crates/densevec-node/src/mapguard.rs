//! Keeps a corpus file that shrinks while it is mapped (`openCorpus`) from killing the process.
//!
//! Reading a page of a file mapping that lies past the file's end raises SIGBUS, whose default
//! action ends the process: a file truncated or rewritten in place by another program while
//! this one searches it would take Node down. Every mapping made by `mapCorpus` is registered
//! here, and a SIGBUS handler (installed with the first mapping, chaining to whatever handler
//! was there before for any other address) answers a fault inside a registered mapping by
//! mapping anonymous zero pages over it, from the faulting page to the mapping's end, so that
//! the read completes.
//!
//! Those zeros are never handed back as data: [`watch`], around every native call, restores
//! the file mapping of any zero-filled range before the call (so a read past the end faults
//! again instead of seeing zeros) and, when a fault happened while the call ran, refuses its
//! result with E_ARG naming the file. A call that runs on another thread while such a fault
//! happens is refused too (the fault is not attributed to a call). Reads outside native calls
//! (JavaScript indexing the mapped `data` directly) see the zeros.
//!
//! The handler does only async-signal-safe work: atomic loads and stores over a registry that
//! is never freed, and one `mmap`.

#[cfg(unix)]
mod imp {
    use densevec_core::{Code, Error, Result};
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
    use std::sync::{Mutex, Once};

    /// Slots per block of the registry.
    const BLOCK: usize = 256;
    /// A `start` of a slot being claimed or released.
    const BUSY: usize = usize::MAX;
    /// A `zeroed_from` with nothing zero-filled.
    const NONE: usize = usize::MAX;

    /// One registered mapping: its address range, the file descriptor it maps, and the offset
    /// from which the handler zero-filled it (`NONE` when it did not).
    struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        fd: AtomicUsize,
        zeroed_from: AtomicUsize,
    }

    /// A block of slots; blocks are linked from [`HEAD`], allocated when all are taken and
    /// never freed (the handler may walk them at any time).
    struct Block {
        slots: [Slot; BLOCK],
        next: AtomicPtr<Block>,
    }

    static HEAD: AtomicPtr<Block> = AtomicPtr::new(std::ptr::null_mut());
    /// Faults answered so far (a call compares it before and after).
    static FAULTS: AtomicUsize = AtomicUsize::new(0);
    /// Set by the handler after a zero-fill, cleared by [`restore`] before it scans.
    static PENDING: AtomicBool = AtomicBool::new(false);
    /// The page size, read when the handler is installed.
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    /// The disposition of SIGBUS before ours (read by the handler only after it is stored).
    static mut OLD: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
    static INSTALL: Once = Once::new();
    /// Whether the handler is in place.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The path of each mapping, by its start address (for the error of a refused call).
    static PATHS: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

    fn blocks() -> impl Iterator<Item = &'static Block> {
        let mut p = HEAD.load(Acquire);
        std::iter::from_fn(move || {
            // SAFETY: blocks are leaked boxes, never freed, linked before they are published.
            let b = unsafe { p.as_ref()? };
            p = b.next.load(Acquire);
            Some(b)
        })
    }

    fn slots() -> impl Iterator<Item = &'static Slot> {
        blocks().flat_map(|b| b.slots.iter())
    }

    /// The registered slot whose (page-rounded) range holds `addr`.
    fn find(addr: usize) -> Option<&'static Slot> {
        let page = PAGE.load(Relaxed);
        slots().find(|s| {
            let start = s.start.load(Acquire);
            if start == 0 || start == BUSY {
                return false;
            }
            let end = (start + s.len.load(Acquire)).div_ceil(page) * page;
            (start..end).contains(&addr)
        })
    }

    /// The faulting address of a SIGBUS.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe fn fault_addr(info: *mut libc::siginfo_t) -> usize {
        (*info).si_addr() as usize
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    unsafe fn fault_addr(info: *mut libc::siginfo_t) -> usize {
        (*info).si_addr as usize
    }

    unsafe extern "C" fn on_sigbus(
        sig: libc::c_int,
        info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        // A fault raised by the kernel (si_code > 0), not a signal sent by a process.
        let fault = !info.is_null() && (*info).si_code > 0;
        let addr = if fault { fault_addr(info) } else { 0 };
        if let Some(s) = find(addr).filter(|_| fault) {
            let page = PAGE.load(Relaxed);
            let start = s.start.load(Acquire);
            let end = (start + s.len.load(Acquire)).div_ceil(page) * page;
            let from = addr / page * page;
            let p = libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
            if p != libc::MAP_FAILED {
                s.zeroed_from.fetch_min(from - start, AcqRel);
                PENDING.store(true, Release);
                FAULTS.fetch_add(1, AcqRel);
                return;
            }
        }
        // Not a registered mapping: whatever was there before.
        let old = &*std::ptr::addr_of!(OLD).cast::<libc::sigaction>();
        let h = old.sa_sigaction;
        if h == libc::SIG_IGN && !fault {
        } else if h == libc::SIG_IGN || h == libc::SIG_DFL {
            // The default action (a fault cannot be ignored): restored and raised again, which
            // ends the process as it would have without this handler.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            libc::raise(libc::SIGBUS);
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }

    fn install() {
        INSTALL.call_once(|| {
            // SAFETY: sysconf and sigaction with valid arguments; OLD is written before the
            // handler can run (it is installed by this very call) and never written again.
            unsafe {
                let page = libc::sysconf(libc::_SC_PAGESIZE);
                if page > 0 {
                    PAGE.store(page as usize, Relaxed);
                }
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigbus as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                let old = std::ptr::addr_of_mut!(OLD).cast::<libc::sigaction>();
                if libc::sigaction(libc::SIGBUS, &sa, old) == 0 {
                    INSTALLED.store(true, Release);
                }
            }
        });
    }

    /// A registered mapping: unregistered when dropped (before the mapping is unmapped).
    pub struct Registration {
        slot: &'static Slot,
        start: usize,
    }

    /// Registers the mapping of `len` bytes at `start` of the file open as `fd` (kept open by
    /// the caller while the registration lives), named `path` in errors. E_ARG when the SIGBUS
    /// handler could not be installed: the mapping is then refused rather than left unguarded.
    pub fn register(start: usize, len: usize, fd: i32, path: &str) -> Result<Registration> {
        install();
        if !INSTALLED.load(Acquire) {
            return Err(Error::new(
                Code::Arg,
                format!("openCorpus: cannot guard the mapping of '{path}' (sigaction failed)"),
            ));
        }
        let slot = loop {
            if let Some(s) =
                slots().find(|s| s.start.compare_exchange(0, BUSY, AcqRel, Acquire).is_ok())
            {
                break s;
            }
            let b = Box::leak(Box::new(Block {
                slots: std::array::from_fn(|_| Slot {
                    start: AtomicUsize::new(0),
                    len: AtomicUsize::new(0),
                    fd: AtomicUsize::new(0),
                    zeroed_from: AtomicUsize::new(NONE),
                }),
                next: AtomicPtr::new(std::ptr::null_mut()),
            }));
            let mut head = HEAD.load(Acquire);
            loop {
                b.next.store(head, Release);
                match HEAD.compare_exchange(head, b, AcqRel, Acquire) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
        };
        slot.len.store(len, Release);
        slot.fd.store(fd as usize, Release);
        slot.zeroed_from.store(NONE, Release);
        slot.start.store(start, Release);
        if let Ok(mut p) = PATHS.lock() {
            p.push((start, path.to_string()));
        }
        Ok(Registration { slot, start })
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            if let Ok(mut p) = PATHS.lock() {
                p.retain(|(s, _)| *s != self.start);
            }
            self.slot.start.store(BUSY, Release);
            self.slot.zeroed_from.store(NONE, Release);
            self.slot.start.store(0, Release);
        }
    }

    /// Maps the file again over every zero-filled range (so that reading past the file's end
    /// faults again rather than seeing zeros); the paths of those files.
    fn restore() -> Vec<String> {
        let mut names = Vec::new();
        // A plain load first: the swap (a locked instruction) only when there is work.
        if !PENDING.load(Acquire) || !PENDING.swap(false, AcqRel) {
            return names;
        }
        for s in slots() {
            let start = s.start.load(Acquire);
            if start == 0 || start == BUSY {
                continue;
            }
            let from = s.zeroed_from.swap(NONE, AcqRel);
            if from == NONE {
                continue;
            }
            let page = PAGE.load(Relaxed);
            let end = (s.len.load(Acquire)).div_ceil(page) * page;
            // SAFETY: the range lies inside the registered mapping, which its owner keeps
            // mapped (and its fd open) until it unregisters; MAP_FIXED replaces the handler's
            // zero pages with the file's, as the mapping was made (private, read-write).
            unsafe {
                libc::mmap(
                    (start + from) as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    s.fd.load(Acquire) as i32,
                    from as libc::off_t,
                );
            }
            if let Ok(p) = PATHS.lock() {
                if let Some((_, name)) = p.iter().find(|(a, _)| *a == start) {
                    names.push(name.clone());
                }
            }
        }
        names
    }

    /// Runs `f` (a native call named `func`), refusing its result when a registered mapping
    /// faulted past its file's end while it ran.
    pub fn watch<T, E>(
        func: &str,
        f: impl FnOnce() -> std::result::Result<T, E>,
        wrap: impl Fn(Error) -> E,
    ) -> std::result::Result<T, E> {
        if !INSTALLED.load(Relaxed) {
            return f();
        }
        restore();
        let before = FAULTS.load(Acquire);
        let r = f();
        if FAULTS.load(Acquire) == before {
            return r;
        }
        let names = restore();
        // An error already refuses the result (a nested watch's names the file).
        r?;
        let which = if names.is_empty() {
            "a memory-mapped corpus file".to_string()
        } else {
            format!("the corpus file '{}'", names.join("', '"))
        };
        Err(wrap(Error::new(
            Code::Arg,
            format!(
                "{func}: {which} shrank while it was mapped (the rows past its new end could not be read, so the result is refused); \
                 write a corpus to a new file and rename it over the old one (writeCorpus does), then open it again"
            ),
        )))
    }
}

#[cfg(not(unix))]
mod imp {
    use densevec_core::{Error, Result};

    /// Nothing to guard: the file of a mapping cannot shrink while it is mapped here.
    pub struct Registration;

    pub fn register(_start: usize, _len: usize, _fd: i32, _path: &str) -> Result<Registration> {
        Ok(Registration)
    }

    pub fn watch<T, E>(
        _func: &str,
        f: impl FnOnce() -> std::result::Result<T, E>,
        _wrap: impl Fn(Error) -> E,
    ) -> std::result::Result<T, E> {
        f()
    }
}

pub use imp::{register, watch};
