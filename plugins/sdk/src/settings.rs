//! Typed lookup of the host-provided numeric settings (`list<setting>`).

use alloc::format;
use alloc::string::String;

/// Reads settings given as `(name, value)` pairs, rejecting unknown names
/// so that a typo in configuration is an error, not a silent default.
#[derive(Debug)]
pub struct Settings<'a> {
    pairs: &'a [(&'a str, f64)],
}

impl<'a> Settings<'a> {
    /// Checks every name against `known`; the error names the first unknown one.
    pub fn parse(pairs: &'a [(&'a str, f64)], known: &[&str]) -> Result<Self, String> {
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !known.contains(n)) {
            return Err(format!("unknown setting `{name}` (known: {})", known.join(", ")));
        }
        for (name, value) in pairs {
            if !value.is_finite() {
                return Err(format!("setting `{name}` must be a finite number, got {value}"));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, or `default` when not given (last one wins).
    pub fn get_or(&self, name: &str, default: f64) -> f64 {
        self.pairs.iter().rev().find(|(n, _)| *n == name).map_or(default, |(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_and_non_finite() {
        assert!(Settings::parse(&[("per-secnd", 1.0)], &["per-second"]).unwrap_err().contains("per-secnd"));
        assert!(Settings::parse(&[("per-second", f64::NAN)], &["per-second"]).is_err());
    }

    #[test]
    fn last_value_wins_and_default_applies() {
        let pairs = [("a", 1.0), ("a", 2.0)];
        let s = Settings::parse(&pairs, &["a", "b"]).unwrap();
        assert_eq!(s.get_or("a", 0.0), 2.0);
        assert_eq!(s.get_or("b", 7.0), 7.0);
    }
}
