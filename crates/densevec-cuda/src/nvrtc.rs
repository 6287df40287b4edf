//! A minimal NVRTC loader with a search path we control.
//!
//! cudarc's own loader looks only for the library names of the CUDA version it was built for and
//! panics when none is found; the `nvidia-cuda-nvrtc` wheel ships another major version in a
//! directory that is not on the loader path. NVRTC's C entry points used here have been stable
//! since CUDA 11, so we open the library ourselves: `DENSEVEC_NVRTC_PATH` (a file or a
//! directory) first, then the usual names of CUDA 13, 12 and 11.

use libloading::Library;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

type Prog = *mut std::ffi::c_void;
type Res = c_int;

/// The NVRTC functions the backend uses.
pub struct Nvrtc {
    _lib: Library,
    /// Where the library was found.
    pub path: String,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Res,
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> Res,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> Res,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> Res,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> Res,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> Res,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> Res,
    destroy: unsafe extern "C" fn(*mut Prog) -> Res,
    err_str: unsafe extern "C" fn(Res) -> *const c_char,
}

fn candidate_names() -> Vec<String> {
    if cfg!(windows) {
        [
            "nvrtc64_130_0.dll",
            "nvrtc64_120_0.dll",
            "nvrtc64_112_0.dll",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else if cfg!(target_os = "macos") {
        vec!["libnvrtc.dylib".into()]
    } else {
        [
            "libnvrtc.so.13",
            "libnvrtc.so.12",
            "libnvrtc.so.11.2",
            "libnvrtc.so",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("DENSEVEC_NVRTC_PATH") {
        let p = PathBuf::from(p);
        if p.is_dir() {
            for n in candidate_names() {
                out.push(p.join(n));
            }
        } else {
            out.push(p);
        }
    }
    for n in candidate_names() {
        out.push(PathBuf::from(n));
    }
    out
}

unsafe fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T, String> {
    lib.get::<T>(name.as_bytes())
        .map(|s| *s)
        .map_err(|e| format!("{name} missing: {e}"))
}

impl Nvrtc {
    fn open(path: &Path) -> Result<Nvrtc, String> {
        // SAFETY: opening NVRTC runs no initialisers with preconditions; the symbols are read with
        // the signatures of NVRTC's public C API (unchanged since CUDA 11).
        unsafe {
            let lib = Library::new(path).map_err(|e| e.to_string())?;
            Ok(Nvrtc {
                version: sym(&lib, "nvrtcVersion")?,
                create: sym(&lib, "nvrtcCreateProgram")?,
                compile: sym(&lib, "nvrtcCompileProgram")?,
                ptx_size: sym(&lib, "nvrtcGetPTXSize")?,
                ptx: sym(&lib, "nvrtcGetPTX")?,
                log_size: sym(&lib, "nvrtcGetProgramLogSize")?,
                log: sym(&lib, "nvrtcGetProgramLog")?,
                destroy: sym(&lib, "nvrtcDestroyProgram")?,
                err_str: sym(&lib, "nvrtcGetErrorString")?,
                path: path.display().to_string(),
                _lib: lib,
            })
        }
    }

    /// NVRTC's (major, minor) version.
    pub fn version(&self) -> (i32, i32) {
        let (mut a, mut b) = (0, 0);
        // SAFETY: two valid out-pointers.
        unsafe { (self.version)(&mut a, &mut b) };
        (a, b)
    }

    fn error(&self, r: Res) -> String {
        // SAFETY: nvrtcGetErrorString returns a static C string (or null).
        unsafe {
            let p = (self.err_str)(r);
            if p.is_null() {
                format!("NVRTC error {r}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// Compiles CUDA C `src` to PTX for `arch` (e.g. "compute_80"). On failure the error holds
    /// NVRTC's log.
    pub fn compile(&self, src: &str, name: &str, arch: &str) -> Result<String, String> {
        let csrc = CString::new(src).map_err(|_| "kernel source holds a NUL byte".to_string())?;
        let cname = CString::new(name).map_err(|_| "kernel name holds a NUL byte".to_string())?;
        let opts: Vec<CString> = [
            format!("--gpu-architecture={arch}"),
            "--std=c++14".into(),
            "-default-device".into(),
        ]
        .into_iter()
        .filter_map(|o| CString::new(o).ok())
        .collect();
        let optp: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        // SAFETY: pointers are valid C strings for the duration of the calls; the program is
        // destroyed on every path.
        unsafe {
            let mut prog: Prog = std::ptr::null_mut();
            let r = (self.create)(
                &mut prog,
                csrc.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            if r != 0 {
                return Err(format!("nvrtcCreateProgram: {}", self.error(r)));
            }
            let r = (self.compile)(prog, optp.len() as c_int, optp.as_ptr());
            let out = if r != 0 {
                let mut n = 0usize;
                (self.log_size)(prog, &mut n);
                let mut buf = vec![0u8; n.max(1)];
                (self.log)(prog, buf.as_mut_ptr() as *mut c_char);
                let log = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\0')
                    .trim()
                    .to_string();
                Err(format!("{name} ({arch}): {}: {log}", self.error(r)))
            } else {
                let mut n = 0usize;
                (self.ptx_size)(prog, &mut n);
                let mut buf = vec![0u8; n.max(1)];
                (self.ptx)(prog, buf.as_mut_ptr() as *mut c_char);
                Ok(String::from_utf8_lossy(&buf)
                    .trim_end_matches('\0')
                    .to_string())
            };
            (self.destroy)(&mut prog);
            out
        }
    }
}

/// The process-wide NVRTC, or why it could not be opened.
pub fn nvrtc() -> Result<&'static Nvrtc, String> {
    static N: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    N.get_or_init(|| {
        let mut tried = Vec::new();
        for c in candidates() {
            match Nvrtc::open(&c) {
                Ok(n) => return Ok(n),
                Err(e) => tried.push(format!(
                    "{} ({})",
                    c.display(),
                    e.lines().next().unwrap_or("")
                )),
            }
        }
        Err(format!(
            "NVRTC not found (set DENSEVEC_NVRTC_PATH to libnvrtc or its directory); tried {}",
            tried
                .iter()
                .map(|t| t.split(" (").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
    .as_ref()
    .map_err(|e| e.clone())
}
