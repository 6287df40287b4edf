//! The argument types shared by the entry points: matrices, compact corpora and the small
//! name sets (metric, dtype), each converted once into a validated core view.

use crate::run::Own;
use densevec_core::precision::{with_precision, Precision};
use densevec_core::quantized::{Corpus, I8Scale};
use densevec_core::similarity::Metric;
use densevec_core::view::{dim, MatRef};
use densevec_core::{Code, Error, Result};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Two matrices of one shape and that shape: (a, b, rows, cols).
pub type Views<'a> = (&'a [f32], &'a [f32], usize, usize);

/// A row-major float32 matrix, as the TypeScript `Matrix`.
#[napi(object)]
pub struct Mat {
    pub data: Float32Array,
    pub rows: f64,
    pub cols: f64,
}

impl Mat {
    /// The validated view (`name` names the argument in errors).
    pub fn view(&self, func: &str, name: &str) -> Result<MatRef<'_>> {
        let rows = dim(func, &format!("{name}.rows"), self.rows)?;
        let cols = dim(func, "cols", self.cols)?;
        MatRef::new(func, name, &self.data, rows, cols)
    }

    /// (rows, cols) as integers, for shapes checked by the core function itself.
    pub fn dims(&self, func: &str, name: &str) -> Result<(usize, usize)> {
        Ok((
            dim(func, &format!("{name}.rows"), self.rows)?,
            dim(func, "cols", self.cols)?,
        ))
    }

    /// This matrix and `twin`, two views of the same items, as the core takes them:
    /// (self, twin, rows, cols), the shape read from this one (the core checks the twin's).
    pub fn views<'a>(&'a self, func: &str, name: &str, twin: &'a Mat) -> Result<Views<'a>> {
        let (rows, cols) = self.dims(func, name)?;
        Ok((&self.data, &twin.data, rows, cols))
    }
}

impl Own for Mat {
    fn own(&self, func: &str, name: &str) -> napi::Result<Self> {
        Ok(Mat {
            data: self.data.own(func, name)?,
            rows: self.rows,
            cols: self.cols,
        })
    }
}

/// A similarity metric.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum MetricName {
    Dot,
    Cosine,
    L2sq,
}

impl From<MetricName> for Metric {
    fn from(m: MetricName) -> Metric {
        match m {
            MetricName::Dot => Metric::Dot,
            MetricName::Cosine => Metric::Cosine,
            MetricName::L2sq => Metric::L2sq,
        }
    }
}

/// The compute precision of the GEMM-bound functions (absent = f32).
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PrecisionName {
    F32,
    Bf16,
}

/// The core's precision for an optional `precision` field.
pub fn precision(p: Option<PrecisionName>) -> Precision {
    match p {
        Some(PrecisionName::Bf16) => Precision::Bf16,
        _ => Precision::F32,
    }
}

/// Whether a call asks for bf16 (no GPU form: such calls stay on the CPU).
pub fn is_bf16(p: Option<PrecisionName>) -> bool {
    p == Some(PrecisionName::Bf16)
}

/// How a fused loss (infoNCE, ntXent, marginSoftmax) runs its GEMMs: `{ precision?,
/// scratchBytes? }`; an absent object or field means f32 and the core's 256 MiB budget.
#[napi(object, object_to_js = false)]
pub struct Gemm {
    /// GEMM precision: 'f32' (default) or 'bf16'.
    pub precision: Option<PrecisionName>,
    /// Bytes the logits (or the logit gradient) may be held in (0 = always the tiled path).
    pub scratch_bytes: Option<f64>,
}

impl Gemm {
    /// Runs a loss's CPU form `f(scratch)` at the precision of its optional `gemm` argument,
    /// with its scratch budget in bytes.
    pub fn run<T>(g: &Option<Gemm>, func: &str, f: impl FnOnce(usize) -> Result<T>) -> Result<T> {
        let scratch = match g.as_ref().and_then(|g| g.scratch_bytes) {
            None => densevec_core::contrastive::DEFAULT_SCRATCH_BYTES,
            Some(v) => dim(func, "scratchBytes", v)?,
        };
        with_precision(precision(g.as_ref().and_then(|g| g.precision)), || {
            f(scratch)
        })
    }

    /// Whether the loss has a GPU form for these options (bf16 has none).
    pub fn gpu(g: &Option<Gemm>) -> bool {
        !is_bf16(g.as_ref().and_then(|g| g.precision))
    }
}

/// The storage type of a corpus.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    I8,
}

/// A corpus in any storage type: `f32` (float32 values), `half` (f16 / bf16 bits) or `int8`
/// (value = v · scale, with `scales` one per row instead of `scale` when given), as `dtype` says.
/// Its width is the query's (`q.cols`).
#[napi(object)]
pub struct CorpusArg {
    pub dtype: Dtype,
    pub rows: f64,
    pub f32: Option<Float32Array>,
    pub half: Option<Uint16Array>,
    pub int8: Option<Int8Array>,
    pub scale: Option<f64>,
    pub scales: Option<Float32Array>,
}

impl CorpusArg {
    /// The row count as an integer.
    pub fn rows(&self, func: &str) -> Result<usize> {
        dim(func, "c.rows", self.rows)
    }

    /// The float32 corpus, when it is one.
    pub fn dense(&self) -> Option<&[f32]> {
        match self.dtype {
            Dtype::F32 => self.f32.as_deref(),
            _ => None,
        }
    }

    /// The core's corpus view (its shape is checked by the core function that takes it).
    pub fn corpus(&self, func: &str) -> Result<Corpus<'_>> {
        let missing = |what: &str| {
            Error::new(
                Code::Type,
                format!(
                    "{func}: c has dtype {} but no {what} data",
                    self.dtype_name()
                ),
            )
        };
        Ok(match self.dtype {
            Dtype::F32 => Corpus::F32(self.f32.as_deref().ok_or_else(|| missing("f32"))?),
            Dtype::F16 => Corpus::F16(self.half.as_deref().ok_or_else(|| missing("half"))?),
            Dtype::Bf16 => Corpus::Bf16(self.half.as_deref().ok_or_else(|| missing("half"))?),
            Dtype::I8 => Corpus::I8 {
                data: self.int8.as_deref().ok_or_else(|| missing("int8"))?,
                scale: match &self.scales {
                    Some(s) => I8Scale::Rows(s),
                    None => I8Scale::Global(self.scale.unwrap_or(0.0) as f32),
                },
            },
        })
    }

    fn dtype_name(&self) -> &'static str {
        match self.dtype {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::I8 => "i8",
        }
    }
}

impl Own for CorpusArg {
    fn own(&self, func: &str, _name: &str) -> napi::Result<Self> {
        Ok(CorpusArg {
            dtype: self.dtype,
            rows: self.rows,
            f32: self.f32.own(func, "c")?,
            half: self.half.own(func, "c")?,
            int8: self.int8.own(func, "c")?,
            scale: self.scale,
            scales: self.scales.own(func, "c.scale")?,
        })
    }
}
