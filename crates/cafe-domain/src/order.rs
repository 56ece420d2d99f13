//! Orders as the café sees them: who ordered what, and where the order is in
//! its life.
//!
//! An order moves `Queued → Brewing → Ready`; it can instead end `Cancelled`
//! (by the customer while queued, or by the café closing) or `Failed`. The
//! types here only describe that life and check what a customer asks for;
//! the café's queue and baristas move orders along.

use std::{borrow::Borrow, fmt, sync::Arc, time::SystemTime};

use crate::menu::{self, Drink, Size};

/// The longest customer name the café writes on a cup.
pub const MAX_CUSTOMER_CHARS: usize = 64;

/// The longest idempotency key the café remembers.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// An order's id, e.g. `ord-3f9c2a1b7e04`.
///
/// Shared, not copied: the book's index, the list of finished orders and
/// every snapshot of the order hold the same `Arc<str>`, so a clone costs
/// a counter increment instead of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Arc<str>);

impl OrderId {
    /// A fresh random id.
    pub fn random() -> Self {
        // Written into a buffer on the stack: one allocation, for the id
        // itself.
        let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
        let hex = uuid::Uuid::new_v4().simple().encode_lower(&mut hex);
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(b"ord-");
        id[4..].copy_from_slice(&hex.as_bytes()[..12]);
        OrderId(Arc::from(
            std::str::from_utf8(&id).expect("ASCII hex digits"),
        ))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for OrderId {
    fn from(id: &str) -> Self {
        OrderId(Arc::from(id))
    }
}

/// Lets a map keyed by `OrderId` be searched with the `&str` a request
/// carries, without making an `OrderId` first.
impl Borrow<str> for OrderId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Waiting in line for a free barista.
    Queued,
    /// A barista is making it.
    Brewing,
    /// Done.
    Ready,
    /// Cancelled before it was brewed.
    Cancelled,
    /// Could not be made.
    Failed,
}

impl OrderStatus {
    /// Whether the order has reached the end of its life: nothing will
    /// change it any more, so buzzers can stop listening.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Ready | OrderStatus::Cancelled | OrderStatus::Failed
        )
    }

    /// The lower-case name used in logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Queued => "queued",
            OrderStatus::Brewing => "brewing",
            OrderStatus::Ready => "ready",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer's name, checked: 1 to 64 characters, none of them control
/// characters (a name ends up on the board, in logs and in terminals).
/// Shared like [`OrderId`]: every snapshot of an order holds the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Customer(Arc<str>);

impl Customer {
    /// Checks a name as a customer gave it.
    pub fn parse(name: &str) -> Result<Self, FieldViolation> {
        let violation = |description: String| FieldViolation {
            field: "customer",
            description,
        };
        if name.trim().is_empty() {
            return Err(violation("customer must not be empty".into()));
        }
        let chars = name.chars().count();
        if chars > MAX_CUSTOMER_CHARS {
            return Err(violation(format!(
                "customer must be at most {MAX_CUSTOMER_CHARS} characters, got {chars}"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(violation(
                "customer must not contain control characters".into(),
            ));
        }
        Ok(Customer(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many characters of what a client sent a refusal quotes back: enough
/// to recognise a typo, and few enough that the refusal always fits in the
/// headers it travels in (a client accepts 16 KiB of them by default; a
/// request may carry a 64 KiB drink name or order id).
pub const QUOTED_CHARS: usize = 32;

/// `text` quoted for a refusal's message, as `{:?}` writes it (control
/// characters escaped), cut after [`QUOTED_CHARS`] characters with `…`.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// One thing wrong with a request: which field, and what is wrong with it.
/// The café returns these as `INVALID_ARGUMENT` with a `BadRequest` detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The protobuf field name, e.g. `customer`.
    pub field: &'static str,
    /// A sentence that names the field and says what would be accepted.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// An order as a customer placed it, after every field was checked.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Who it is for.
    pub customer: Customer,
    /// What to brew.
    pub drink: &'static Drink,
    /// Which cup.
    pub size: Size,
    /// The customer's idempotency key, if they gave one.
    pub request_id: Option<String>,
}

impl NewOrder {
    /// Checks the fields of an order request. `size` is `None` when the
    /// customer left it unspecified (medium); every problem is reported, not
    /// only the first.
    pub fn parse(
        customer: &str,
        drink: &str,
        size: Result<Option<Size>, FieldViolation>,
        request_id: &str,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();

        let customer = Customer::parse(customer)
            .map_err(|v| violations.push(v))
            .ok();
        let cup = Cup::parse(drink, size)
            .map_err(|cup_violations| violations.extend(cup_violations))
            .ok();
        let request_id_chars = request_id.chars().count();
        if request_id_chars > MAX_REQUEST_ID_CHARS {
            violations.push(FieldViolation {
                field: "request_id",
                description: format!(
                    "request_id must be at most {MAX_REQUEST_ID_CHARS} characters, got {request_id_chars}"
                ),
            });
        }
        // Checked here, not left to the store: a key no store can keep
        // (PostgreSQL refuses a NUL byte in text) is the request's fault,
        // and must not be answered "try again" by one store and taken by
        // another.
        if request_id.chars().any(char::is_control) {
            violations.push(FieldViolation {
                field: "request_id",
                description: "request_id must not contain control characters".into(),
            });
        }

        match (customer, cup) {
            (Some(customer), Some(Cup { drink, size })) if violations.is_empty() => Ok(NewOrder {
                customer,
                drink,
                size,
                request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            }),
            _ => Err(violations),
        }
    }
}

/// A drink in a size it is made in: what a barista is asked to brew. Both
/// the café (inside [`NewOrder::parse`]) and the barista backend (for a
/// `BrewRequest`) check a drink and a size with [`Cup::parse`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cup {
    /// What to brew.
    pub drink: &'static Drink,
    /// Which cup.
    pub size: Size,
}

impl Cup {
    /// Checks a menu id and a size (`None` is medium), reporting every
    /// problem with the field it is about.
    pub fn parse(
        drink: &str,
        size: Result<Option<Size>, FieldViolation>,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let drink = match menu::find(drink) {
            Some(drink) => Some(drink),
            None if drink.is_empty() => {
                violations.push(FieldViolation {
                    field: "drink",
                    description: format!("drink must be one of: {}", menu::ids()),
                });
                None
            }
            None => {
                violations.push(FieldViolation {
                    field: "drink",
                    description: format!(
                        "drink {} is not on the menu: choose one of {}",
                        quoted(drink),
                        menu::ids()
                    ),
                });
                None
            }
        };
        let size = match size {
            Ok(size) => Some(size.unwrap_or(Size::Medium)),
            Err(violation) => {
                violations.push(violation);
                None
            }
        };
        if let (Some(drink), Some(size)) = (drink, size)
            && !drink.comes_in(size)
        {
            violations.push(FieldViolation {
                field: "size",
                description: format!("size {size} is not made for {}", drink.id),
            });
        }
        match (drink, size) {
            (Some(drink), Some(size)) if violations.is_empty() => Ok(Cup { drink, size }),
            _ => Err(violations),
        }
    }
}

/// An order and everything that has happened to it so far.
///
/// Cheap to clone: its strings are shared (`Arc<str>`), so the café can
/// hand the same order to a buzzer, the board and a response without
/// copying text.
#[derive(Debug, Clone)]
pub struct Order {
    /// The café's id for it.
    pub id: OrderId,
    /// Who it is for.
    pub customer: Customer,
    /// What is being brewed.
    pub drink: &'static Drink,
    /// Which cup.
    pub size: Size,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Who is brewing or brewed it.
    pub barista: Option<Arc<str>>,
    /// When the customer ordered.
    pub placed_at: SystemTime,
    /// When a barista started on it.
    pub started_at: Option<SystemTime>,
    /// When it was ready.
    pub ready_at: Option<SystemTime>,
    /// A remark on the latest change (why it was cancelled or failed).
    pub note: Option<Arc<str>>,
}

impl Order {
    /// A freshly placed, queued order.
    pub fn place(id: OrderId, new: &NewOrder) -> Self {
        Order {
            id,
            customer: new.customer.clone(),
            drink: new.drink,
            size: new.size,
            status: OrderStatus::Queued,
            barista: None,
            placed_at: SystemTime::now(),
            started_at: None,
            ready_at: None,
            note: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_quotes_a_short_text_whole_and_a_long_one_cut() {
        assert_eq!(quoted("whisky"), "\"whisky\"");
        assert_eq!(quoted("Zoë\u{7}"), "\"Zoë\\u{7}\"");
        let long = "☕".repeat(10_000);
        let cut = quoted(&long);
        assert_eq!(cut, format!("{:?}…", "☕".repeat(QUOTED_CHARS)));
        // The fuzzer's seed `refused-long-drink`: a 30 KB drink name made a
        // 30 KB status message, which a client refused as RESOURCE_EXHAUSTED
        // (headers too large) instead of reading INVALID_ARGUMENT.
        let violations = Cup::parse(&long, Ok(None)).unwrap_err();
        assert!(violations[0].description.len() < 300);
    }

    fn violations(customer: &str, drink: &str, size: Option<Size>) -> Vec<&'static str> {
        match NewOrder::parse(customer, drink, Ok(size), "") {
            Ok(_) => vec![],
            Err(v) => v.iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn order_ids_are_ord_and_twelve_hex_digits() {
        let id = OrderId::random();
        let hex = id.as_str().strip_prefix("ord-").unwrap();
        assert_eq!(hex.len(), 12);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(OrderId::random(), id);
    }

    #[test]
    fn a_plain_order_is_accepted_and_defaults_to_medium() {
        let order = NewOrder::parse("Ada", "latte", Ok(None), "").unwrap();
        assert_eq!(order.size, Size::Medium);
        assert_eq!(order.request_id, None);
    }

    #[test]
    fn customer_names_are_checked() {
        assert_eq!(violations("", "latte", None), ["customer"]);
        assert_eq!(violations("   ", "latte", None), ["customer"]);
        assert_eq!(violations("Ada\nLovelace", "latte", None), ["customer"]);
        assert_eq!(
            violations(&"é".repeat(64), "latte", None),
            Vec::<&str>::new()
        );
        assert_eq!(violations(&"é".repeat(65), "latte", None), ["customer"]);
    }

    #[test]
    fn request_ids_are_checked() {
        let refused = |request_id: &str| {
            NewOrder::parse("Ada", "latte", Ok(None), request_id)
                .err()
                .map(|violations| violations.iter().map(|v| v.field).collect::<Vec<_>>())
        };
        assert_eq!(refused("retry-1"), None);
        assert_eq!(refused("a\0b"), Some(vec!["request_id"]));
        assert_eq!(refused("a\nb"), Some(vec!["request_id"]));
        assert_eq!(
            refused(&"k".repeat(MAX_REQUEST_ID_CHARS + 1)),
            Some(vec!["request_id"])
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        assert_eq!(violations("", "frappuccino", None), ["customer", "drink"]);
        assert_eq!(violations("Ada", "espresso", Some(Size::Large)), ["size"]);
    }
}
