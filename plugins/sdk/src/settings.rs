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

    /// The value of `name` (or `default`) as a whole number >= 0.
    pub fn whole_number_or(&self, name: &str, default: u64) -> Result<u64, String> {
        let value = self.get_or(name, default as f64);
        if value >= 0.0 && value % 1.0 == 0.0 {
            // Float-to-int casts saturate: a huge value stays huge.
            Ok(value as u64)
        } else {
            Err(format!("setting `{name}` must be a whole number >= 0, got {value}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers() {
        let pairs = [("n", 3.0), ("bad", 0.5), ("neg", -1.0)];
        let s = Settings::parse(&pairs, &["n", "bad", "neg", "absent"]).unwrap();
        assert_eq!(s.whole_number_or("n", 0), Ok(3));
        assert_eq!(s.whole_number_or("absent", 7), Ok(7));
        assert!(s.whole_number_or("bad", 0).unwrap_err().contains("`bad`"));
        assert!(s.whole_number_or("neg", 0).is_err());
    }

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
