//! Drink names as a person types them: in any case (`Latte` is `latte`),
//! and a near miss (`latee`, `expresso`) answered with "did you mean".
//!
//! The café stays the judge of what is on its menu: the CLI only lowercases
//! the name before sending it, and when the café refuses a drink, looks for
//! the nearest id on the menu the café serves (`cafe_domain::menu`, shared
//! by the café and this CLI) to add to the refusal. The distance is
//! Jaro-Winkler from `strsim` (the crate clap's own "did you mean" uses),
//! which weighs a shared beginning, where typos are rarest.

use cafe_domain::menu;

use crate::error::ClientError;

/// How alike a typed name and a menu id must be to be suggested: close to
/// clap's own threshold for misspelt flags.
const NEAR: f64 = 0.8;

/// The menu id a typed drink name stands for: trimmed and lowercased (menu
/// ids are lowercase). A clap value parser, so every `--drink` and `cafe
/// order DRINK` reads names alike; it refuses nothing, the café does.
pub fn menu_id(typed: &str) -> Result<String, std::convert::Infallible> {
    Ok(typed.trim().to_lowercase())
}

/// The menu id nearest to `typed`, if one is near enough to be what was
/// meant; `None` for a name on the menu, or one far from every id.
pub fn near_miss(typed: &str) -> Option<&'static str> {
    if menu::find(typed).is_some() {
        return None;
    }
    menu::MENU
        .iter()
        .map(|drink| (strsim::jaro_winkler(typed, drink.id), drink.id))
        .filter(|(likeness, _)| *likeness >= NEAR)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

impl ClientError {
    /// Adds "did you mean …?" to the café's refusal of an order for
    /// `drink`, when the drink is a near miss of a menu id. Any other
    /// error is returned as it was.
    pub fn about_drink(self, drink: &str) -> Self {
        match (self, near_miss(drink)) {
            (ClientError::InvalidArgument(message), Some(id)) => {
                ClientError::InvalidArgument(format!("{message}; did you mean {id}?"))
            }
            (error, _) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_does_not_matter() {
        assert_eq!(menu_id(" Latte ").unwrap(), "latte");
        assert_eq!(menu_id("ESPRESSO").unwrap(), "espresso");
    }

    #[test]
    fn a_near_miss_is_suggested_and_a_far_one_is_not() {
        assert_eq!(near_miss("latee"), Some("latte"));
        assert_eq!(near_miss("expresso"), Some("espresso"));
        assert_eq!(near_miss("capuccino"), Some("cappuccino"));
        assert_eq!(near_miss("moca"), Some("mocha"));
        assert_eq!(near_miss("frappe"), None);
        assert_eq!(near_miss("latte"), None, "on the menu: nothing to suggest");
    }

    #[test]
    fn only_a_refusal_gets_the_hint() {
        let refused = ClientError::InvalidArgument("drink \"latee\" is not on the menu".into());
        assert_eq!(
            refused.about_drink("latee").to_string(),
            "the café refused the order: drink \"latee\" is not on the menu; did you mean latte?"
        );
        let other = ClientError::NotFound("no order".into());
        assert_eq!(other.about_drink("latee").to_string(), "no order");
    }
}
