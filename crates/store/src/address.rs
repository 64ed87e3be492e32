//! Email addresses and domains as the CRM records keep them: trimmed, lower-cased and checked,
//! so that the matching job compares like with like (`Alice@Example.COM ` and
//! `alice@example.com` are one address) and a typo is refused when it is entered rather than
//! silently never matching.
//!
//! The check is deliberately practical, not RFC 5321 in full: one `@`, a local part, a domain
//! with a dot, no spaces or control characters, and the lengths mail systems accept. Quoted
//! local parts and IP-literal domains are refused; no CRM contact uses them.

/// The longest address SMTP carries (RFC 5321's path limit less the angle brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// The longest local part (before the `@`).
pub const MAX_LOCAL_LEN: usize = 64;

/// Why a text is not an address (or not a domain). The message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// No `@`.
    #[error("it has no '@'; write it as name@domain.example")]
    NoAt,
    /// More than one `@`.
    #[error("it has more than one '@'; give one address per field (contact points are separated by ';')")]
    SeveralAt,
    /// Nothing before the `@`.
    #[error("nothing before the '@'; write it as name@domain.example")]
    EmptyLocal,
    /// The domain (given) has no dot.
    #[error("the domain '{0}' has no dot; write a full domain such as example.com")]
    DomainWithoutDot(String),
    /// The domain (given) has an empty label or a character domains cannot hold.
    #[error("the domain '{0}' is malformed (empty label, or a character other than letters, digits, '-' and '.')")]
    BadDomain(String),
    /// A space, comma, semicolon, angle bracket or control character.
    #[error("it contains a space, comma, semicolon, angle bracket or control character; give the bare address only")]
    BadCharacter,
    /// Longer than an address (or its local part) may be.
    #[error("it is longer than {MAX_ADDRESS_LEN} characters (or its part before '@' longer than {MAX_LOCAL_LEN})")]
    TooLong,
}

/// Trims and lower-cases `raw` and checks it is an email address; returns the stored form.
pub fn normalise_address(raw: &str) -> Result<String, AddressError> {
    let address = raw.trim().to_lowercase();
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>'))
    {
        return Err(AddressError::BadCharacter);
    }
    let (local, domain) = match address.split('@').collect::<Vec<_>>()[..] {
        [_] => return Err(AddressError::NoAt),
        [local, domain] => (local, domain),
        _ => return Err(AddressError::SeveralAt),
    };
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if address.len() > MAX_ADDRESS_LEN || local.len() > MAX_LOCAL_LEN {
        return Err(AddressError::TooLong);
    }
    check_domain(domain)?;
    Ok(address)
}

/// Trims and lower-cases a domain (a leading `@` is dropped, as in `@example.com`) and checks
/// it; returns the stored form.
pub fn normalise_domain(raw: &str) -> Result<String, AddressError> {
    let domain = raw.trim().trim_start_matches('@').to_lowercase();
    if domain.is_empty() {
        return Err(AddressError::Empty);
    }
    if domain
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>'))
    {
        return Err(AddressError::BadCharacter);
    }
    if domain.contains('@') {
        return Err(AddressError::SeveralAt);
    }
    if domain.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong);
    }
    check_domain(&domain)?;
    Ok(domain)
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() || !domain.contains('.') {
        return Err(AddressError::DomainWithoutDot(domain.to_string()));
    }
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err(AddressError::BadDomain(domain.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalise_address("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            normalise_address("\tbob.o+crm@mail.example.co.uk\n").unwrap(),
            "bob.o+crm@mail.example.co.uk"
        );
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_reason() {
        assert_eq!(normalise_address("   "), Err(AddressError::Empty));
        assert_eq!(normalise_address("alice"), Err(AddressError::NoAt));
        assert_eq!(
            normalise_address("a@b@c.example"),
            Err(AddressError::SeveralAt)
        );
        assert_eq!(
            normalise_address("@c.example"),
            Err(AddressError::EmptyLocal)
        );
        assert_eq!(
            normalise_address("alice@localhost"),
            Err(AddressError::DomainWithoutDot("localhost".into()))
        );
        assert_eq!(
            normalise_address("alice@"),
            Err(AddressError::DomainWithoutDot(String::new()))
        );
        assert_eq!(
            normalise_address("alice@c..example"),
            Err(AddressError::BadDomain("c..example".into()))
        );
        assert_eq!(
            normalise_address("alice@.c.example"),
            Err(AddressError::BadDomain(".c.example".into()))
        );
        assert_eq!(
            normalise_address("al ice@c.example"),
            Err(AddressError::BadCharacter)
        );
        assert_eq!(
            normalise_address("a@c.example; b@c.example"),
            Err(AddressError::BadCharacter)
        );
        assert_eq!(
            normalise_address("Alice <alice@c.example>"),
            Err(AddressError::BadCharacter)
        );
        assert_eq!(
            normalise_address("a\u{0}@c.example"),
            Err(AddressError::BadCharacter)
        );
        let long_local = format!("{}@c.example", "a".repeat(65));
        assert_eq!(normalise_address(&long_local), Err(AddressError::TooLong));
        let long = format!("a@{}.example", "b".repeat(250));
        assert!(normalise_address(&long).is_err());
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(normalise_domain(" @Example.COM ").unwrap(), "example.com");
        assert_eq!(
            normalise_domain("smith-family.example").unwrap(),
            "smith-family.example"
        );
        assert_eq!(
            normalise_domain("localhost"),
            Err(AddressError::DomainWithoutDot("localhost".into()))
        );
        assert_eq!(
            normalise_domain("a@b.example"),
            Err(AddressError::SeveralAt)
        );
        assert_eq!(
            normalise_domain("-bad.example"),
            Err(AddressError::BadDomain("-bad.example".into()))
        );
    }
}
