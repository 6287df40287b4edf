//! Errors with the stable codes of the public API.

use std::fmt;

/// The public error codes (API.md, Errors). When several apply, callers report the first in
/// declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// An argument is not of the required type.
    Type,
    /// Lengths or dimensions disagree, or an input is empty / too small.
    Shape,
    /// A value outside its domain.
    Arg,
    /// NaN or ±∞ in an input of a loss, regularizer or statistic.
    NonFinite,
    /// A requested backend is not available.
    Backend,
}

impl Code {
    /// The code string seen by JavaScript (`E_TYPE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Type => "E_TYPE",
            Code::Shape => "E_SHAPE",
            Code::Arg => "E_ARG",
            Code::NonFinite => "E_NON_FINITE",
            Code::Backend => "E_BACKEND",
        }
    }
}

/// An error with a code and a message that names the function and the argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub msg: String,
}

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.msg)
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// `bail!(Shape, "fn: …", args)` returns an [`Error`] with that code.
#[macro_export]
macro_rules! bail {
    ($code:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::Code::$code, format!($($arg)*)))
    };
}

/// Checks a matrix buffer: `data.len() == rows * cols` and non-empty.
pub fn check_matrix(func: &str, name: &str, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    if rows.checked_mul(cols) != Some(data.len()) {
        bail!(
            Shape,
            "{func}: {name} has data.length {} but rows * cols = {} * {}",
            data.len(),
            rows,
            cols
        );
    }
    if rows == 0 || cols == 0 {
        bail!(Shape, "{func}: {name} is empty ({rows} x {cols})");
    }
    Ok(())
}

/// Fails with `E_NON_FINITE` if any value is NaN or ±∞.
pub fn check_finite(func: &str, name: &str, data: &[f32]) -> Result<()> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            NonFinite,
            "{func}: {name} has a non-finite value {} at index {i}",
            data[i]
        );
    }
    Ok(())
}
