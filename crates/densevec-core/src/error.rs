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

/// A number as JavaScript's `String(x)` prints it (`NaN`, `Infinity`, `-Infinity`, `1e-7`,
/// `1e+21`, `0.5`, `-0`→`0`), so that native and reference messages carry the same text.
pub fn js_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and exponent, as both languages choose them.
    let e = format!("{:e}", v.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1;
    let sign = if v < 0.0 { "-" } else { "" };
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let es = if n >= 1 {
            format!("+{}", n - 1)
        } else {
            format!("{}", n - 1)
        };
        if k == 1 {
            format!("{digits}e{es}")
        } else {
            format!("{}.{}e{es}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

/// Checks a matrix buffer: `data.len() == rows * cols` and non-empty. Same text as the
/// TypeScript check (`validate.matShape`); the check itself is [`crate::view::MatRef::new`].
pub fn check_matrix(func: &str, name: &str, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    crate::view::MatRef::new(func, name, data, rows, cols).map(|_| ())
}

/// Checks that a per-row input `name` (labels, ids, weights, …) holds one value per row of the
/// matrix `of` (`rows` rows): `E_SHAPE` otherwise, with the same text as the TypeScript check.
pub fn check_rows(func: &str, name: &str, len: usize, of: &str, rows: usize) -> Result<()> {
    if len != rows {
        bail!(
            Shape,
            "{func}: {name} has length {len} but {of} has {rows} rows"
        );
    }
    Ok(())
}

/// Whether `v` holds a NaN or an infinity: one branch-free pass (it vectorizes, unlike a
/// search that stops at the first hit), for scans that are nearly always clean.
pub fn any_non_finite(v: &[f32]) -> bool {
    v.iter().fold(0u32, |a, x| {
        a | ((x.to_bits() & 0x7f80_0000) == 0x7f80_0000) as u32
    }) != 0
}

/// Fails with `E_NON_FINITE` if any value is NaN or ±∞ (the value printed as JavaScript does).
pub fn check_finite(func: &str, name: &str, data: &[f32]) -> Result<()> {
    let bad = |v: &f32| !v.is_finite();
    // Large inputs are scanned in parallel by chunks (the first bad index is still the one
    // reported: the first chunk holding one, then its first).
    const CHUNK: usize = 1 << 16;
    let first = if data.len() < 1 << 20 {
        data.iter().position(bad)
    } else {
        use rayon::prelude::*;
        crate::pool::run(|| data.par_chunks(CHUNK).position_first(any_non_finite)).and_then(|ci| {
            let c = &data[ci * CHUNK..];
            c.iter().position(bad).map(|i| ci * CHUNK + i)
        })
    };
    if let Some(i) = first {
        bail!(
            NonFinite,
            "{func}: {name} has a non-finite value {} at index {i}",
            js_num(data[i] as f64)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finite_names_the_first_bad_value_of_a_large_input() {
        // Large inputs are scanned in parallel chunks: the first bad index still wins, also
        // when a later chunk holds another one and when it sits inside its chunk.
        let mut x = vec![1f32; (1 << 20) + 12_345];
        for (at, v) in [
            (900_001, f32::INFINITY),
            (70_000, f32::NAN),
            (1 << 20, f32::NAN),
        ] {
            x[at] = v;
        }
        let e = check_finite("f", "x", &x).unwrap_err();
        assert_eq!(e.msg, "f: x has a non-finite value NaN at index 70000");
        x[70_000] = 1.0;
        let e = check_finite("f", "x", &x).unwrap_err();
        assert_eq!(
            e.msg,
            "f: x has a non-finite value Infinity at index 900001"
        );
        x[900_001] = f32::MAX;
        x[1 << 20] = 1.0;
        assert!(check_finite("f", "x", &x).is_ok());
    }

    #[test]
    fn js_num_prints_as_javascript() {
        let cases: [(f64, &str); 16] = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456.0, "123456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.2345e30, "1.2345e+30"),
            (3.4028234663852886e38, "3.4028234663852886e+38"),
        ];
        for (v, want) in cases {
            assert_eq!(js_num(v), want, "{v:e}");
        }
    }

    #[test]
    fn matrix_messages_match_the_typescript_text() {
        let e = check_matrix("f", "q", &[0.0; 3], 1, 2).unwrap_err();
        assert_eq!(e.msg, "f: q.data has length 3 but rows * cols = 1 * 2 = 2");
        let e = check_finite("f", "x", &[1.0, f32::INFINITY]).unwrap_err();
        assert_eq!(e.msg, "f: x has a non-finite value Infinity at index 1");
    }
}
