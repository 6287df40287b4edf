//! Binding of memory-mapped corpus files (`openCorpus`).

use crate::common::{err, to_napi};
use densevec_core::Code;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Bytes of the corpus file header (see `lib/pipelines.ts`, which reads and writes it).
const HEADER: u64 = 64;

/// The most bytes one mapped ArrayBuffer holds on the supported Node versions.
const MAX_MAPPED_BYTES: u64 = 1 << 32;

/// Memory-maps the file at `path` (private copy-on-write pages: writes through the returned
/// buffer never reach the file, and never fault) and returns an ArrayBuffer over the mapping,
/// without copying. The mapping lives as long as the ArrayBuffer (and every view of it); it is
/// unmapped when the garbage collector frees the buffer. Files shorter than the 64-byte header
/// are refused (E_SHAPE), files over 4 GiB with E_ARG; the header itself is read by the caller.
#[napi(js_name = "mapCorpus")]
pub fn map_corpus(env: Env, path: String) -> napi::Result<ArrayBuffer<'static>> {
    const F: &str = "openCorpus";
    let file = std::fs::File::open(&path)
        .map_err(|e| err(Code::Arg, format!("{F}: cannot open '{path}': {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| err(Code::Arg, format!("{F}: cannot read '{path}': {e}")))?
        .len();
    if len < HEADER {
        return Err(err(
            Code::Shape,
            format!("{F}: '{path}' has {len} bytes, less than the {HEADER}-byte header (truncated or not a corpus file)"),
        ));
    }
    let size = usize::try_from(len).map_err(|_| {
        err(
            Code::Arg,
            format!("{F}: '{path}' has {len} bytes, too large to map here"),
        )
    })?;
    // One ArrayBuffer holds at most 2^32 bytes on the Node versions this package supports
    // (Node refuses larger external buffers): refuse with the way out rather than fail inside.
    if len > MAX_MAPPED_BYTES {
        return Err(err(
            Code::Arg,
            format!(
                "{F}: '{path}' has {len} bytes, more than the {MAX_MAPPED_BYTES} bytes (4 GiB) one mapped buffer holds; \
                 write the corpus as shard files of at most 4 GiB (writeCorpus per shard) and combine them \
                 exactly with topKStream or mergeTopK"
            ),
        ));
    }
    // SAFETY: a private (copy-on-write) mapping: changes by other processes to the file while it
    // is mapped may or may not be seen, as documented for openCorpus; the memory stays valid
    // until the mapping is dropped by the buffer's finalizer. A read past the file's end after
    // the file shrank is answered by the SIGBUS guard (`mapguard`), registered before the
    // buffer can be read and unregistered before the mapping is dropped.
    let mut map = unsafe { memmap2::MmapOptions::new().len(size).map_copy(&file) }
        .map_err(|e| err(Code::Arg, format!("{F}: cannot map '{path}': {e}")))?;
    let ptr = map.as_mut_ptr();
    #[cfg(unix)]
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
    #[cfg(not(unix))]
    let fd = 0;
    let guard = crate::mapguard::register(ptr as usize, size, fd, &path).map_err(to_napi)?;
    // Dropped in this order: the registration, then the mapping, then the file it maps.
    let held = (guard, map, file);
    // SAFETY: `ptr` points at `size` bytes owned by `held`, which the finalizer drops when the
    // ArrayBuffer is collected, so the memory outlives every view of it.
    unsafe { ArrayBuffer::from_external(&env, ptr, size, held, |_, h| drop(h)) }
}
