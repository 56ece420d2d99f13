//! Claim tokens: the secret on a customer's ticket that lets them, and only
//! them, cancel their order.
//!
//! A token is 128 random bits, kept as a number and written out (32 hex
//! digits) only when it is handed to the customer. Checking one compares
//! in constant time: how long the comparison takes must not tell an
//! attacker how much of a guessed token was right.

use std::fmt;

use uuid::Uuid;

/// The secret given to the customer who placed an order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClaimToken(Uuid);

impl ClaimToken {
    /// A fresh random token.
    pub(crate) fn random() -> Self {
        ClaimToken(Uuid::new_v4())
    }

    /// A token as it was handed out (read back from the order store);
    /// `None` if `written` is not one.
    pub(crate) fn parse(written: &str) -> Option<Self> {
        Uuid::try_parse(written).ok().map(ClaimToken)
    }

    /// The token as handed to the customer (32 hex digits), written into
    /// `hex`: for a store, which needs no `String` of it.
    pub(crate) fn encode<'b>(&self, hex: &'b mut [u8; 32]) -> &'b str {
        self.0.simple().encode_lower(hex)
    }

    /// Whether `presented` is this token, written as the customer got it.
    pub fn matches(&self, presented: &str) -> bool {
        // Only the exact form the customer was given: 32 lower-case hex
        // digits. Parsing looks at the guess only, never at the secret.
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if presented.len() != uuid::fmt::Simple::LENGTH || !presented.bytes().all(lower_hex) {
            return false;
        }
        let Ok(guess) = Uuid::try_parse(presented) else {
            return false;
        };
        let (ours, theirs) = (self.0.as_bytes(), guess.as_bytes());
        ours.iter()
            .zip(theirs)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

/// Never printed in logs by accident: a token in a log is a token leaked.
impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_as_given_matches() {
        let token = ClaimToken::random();
        let given = token.to_string();
        assert_eq!(given.len(), 32);
        assert!(token.matches(&given));
        assert!(!token.matches(&ClaimToken::random().to_string()));
        assert!(!token.matches(""));
        assert!(!token.matches("guess"));
        assert!(!token.matches(&given.to_uppercase()));
        assert!(!token.matches(&token.0.hyphenated().to_string()));
        assert_eq!(format!("{token:?}"), "ClaimToken(…)");
        assert_eq!(
            ClaimToken::parse(&given),
            Some(token),
            "as the store keeps it"
        );
    }
}
