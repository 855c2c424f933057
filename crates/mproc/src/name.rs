//! Object names: validated once, never turned into a path by concatenation alone.

use crate::error::NameError;

/// Longest accepted name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Checks a name against `[A-Za-z0-9_.-]{1,128}`, not starting with `.`.
///
/// Such a name is always a single, non-hidden path component, so joining it to
/// the namespace directory can never escape it.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(
            name.chars().take(40).collect::<String>() + "…",
        ));
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot(name.to_owned()));
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            ch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in ["a", "jobs", "queue-1.v2_x", &"x".repeat(128)] {
            assert_eq!(validate_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_name(&"x".repeat(129)),
            Err(NameError::TooLong(_))
        ));
        assert!(matches!(
            validate_name(".hidden"),
            Err(NameError::LeadingDot(_))
        ));
        assert!(matches!(validate_name(".."), Err(NameError::LeadingDot(_))));
        assert!(matches!(
            validate_name("../x"),
            Err(NameError::LeadingDot(_))
        ));
        for bad in ["a/../x", "a/b", "a b", "tab\t", "nul\0", "é", "new\nline"] {
            assert!(
                matches!(validate_name(bad), Err(NameError::BadChar { .. })),
                "{bad:?}"
            );
        }
    }
}
