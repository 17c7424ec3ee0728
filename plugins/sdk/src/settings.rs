//! Typed lookup of the host-provided numeric settings (`list<setting>`).

use alloc::format;
use alloc::string::String;

/// Why settings were refused. The plugin contract gives the two cases
/// different error kinds: an unknown name is `unsupported`, a bad value
/// `invalid-input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// A name the plugin does not know (likely a typo in configuration).
    Unknown(String),
    /// A known name with a value the plugin cannot use.
    Invalid(String),
}

impl SettingsError {
    pub fn is_unknown(&self) -> bool {
        matches!(self, SettingsError::Unknown(_))
    }

    pub fn message(&self) -> &str {
        match self {
            SettingsError::Unknown(m) | SettingsError::Invalid(m) => m,
        }
    }
}

impl core::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Reads settings given as `(name, value)` pairs, rejecting unknown names
/// so that a typo in configuration is an error, not a silent default.
#[derive(Debug)]
pub struct Settings<'a> {
    pairs: &'a [(&'a str, f64)],
}

impl<'a> Settings<'a> {
    /// Checks every name against `known`; the error names the first unknown one.
    pub fn parse(pairs: &'a [(&'a str, f64)], known: &[&str]) -> Result<Self, SettingsError> {
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !known.contains(n)) {
            return Err(SettingsError::Unknown(format!("unknown setting `{name}` (known: {})", known.join(", "))));
        }
        for (name, value) in pairs {
            if !value.is_finite() {
                return Err(SettingsError::Invalid(format!("setting `{name}` must be a finite number, got {value}")));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, or `default` when not given (last one wins).
    pub fn get_or(&self, name: &str, default: f64) -> f64 {
        self.pairs.iter().rev().find(|(n, _)| *n == name).map_or(default, |(_, v)| *v)
    }

    /// The value of `name` (or `default`) as a whole number >= 0.
    pub fn whole_number_or(&self, name: &str, default: u64) -> Result<u64, SettingsError> {
        let value = self.get_or(name, default as f64);
        if value >= 0.0 && value % 1.0 == 0.0 {
            // Float-to-int casts saturate: a huge value stays huge.
            Ok(value as u64)
        } else {
            Err(SettingsError::Invalid(format!("setting `{name}` must be a whole number >= 0, got {value}")))
        }
    }
}

/// Defines `error(kind, message)` and `settings_error(SettingsError)` in the
/// calling plugin, over the `PluginError` and `ErrorKind` its own bindings
/// generated (both must be in scope); messages start with `$plugin: `. An
/// unknown setting maps to `unsupported`, a bad value to `invalid-input`.
#[macro_export]
macro_rules! plugin_errors {
    ($plugin:literal) => {
        #[allow(dead_code)]
        fn error(kind: ErrorKind, message: impl core::fmt::Display) -> PluginError {
            PluginError { kind, message: format!(concat!($plugin, ": {}"), message) }
        }

        #[allow(dead_code)]
        fn settings_error(e: $crate::settings::SettingsError) -> PluginError {
            let kind = if e.is_unknown() { ErrorKind::Unsupported } else { ErrorKind::InvalidInput };
            error(kind, e)
        }
    };
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
        assert!(s.whole_number_or("bad", 0).unwrap_err().message().contains("`bad`"));
        assert!(s.whole_number_or("neg", 0).is_err());
    }

    #[test]
    fn rejects_unknown_and_non_finite() {
        let unknown = Settings::parse(&[("per-secnd", 1.0)], &["per-second"]).unwrap_err();
        assert!(unknown.is_unknown() && unknown.message().contains("per-secnd"), "{unknown}");
        let nan = Settings::parse(&[("per-second", f64::NAN)], &["per-second"]).unwrap_err();
        assert!(!nan.is_unknown(), "{nan}");
    }

    #[test]
    fn last_value_wins_and_default_applies() {
        let pairs = [("a", 1.0), ("a", 2.0)];
        let s = Settings::parse(&pairs, &["a", "b"]).unwrap();
        assert_eq!(s.get_or("a", 0.0), 2.0);
        assert_eq!(s.get_or("b", 7.0), 7.0);
    }
}
