//! The one translation layer between the domain ([`crate::menu`],
//! [`crate::order`]) and the protobuf messages in [`crate::proto`].
//!
//! Keeping it in one place means the café's logic never touches generated
//! types, and a change to the wire format shows up here and nowhere else.

use std::time::{Duration, SystemTime};

use crate::{
    menu::{Drink, Size, TimeScale},
    order::{Cup, FieldViolation, NewOrder, Order, OrderStatus},
    proto::v1 as pb,
};

impl From<Size> for pb::Size {
    fn from(size: Size) -> Self {
        match size {
            Size::Small => pb::Size::Small,
            Size::Medium => pb::Size::Medium,
            Size::Large => pb::Size::Large,
        }
    }
}

/// Reads a size off the wire: `Ok(None)` for unspecified (medium), an error
/// naming the field for a number that is no `Size` at all.
pub fn size_from_wire(raw: i32) -> Result<Option<Size>, FieldViolation> {
    match pb::Size::try_from(raw) {
        Ok(pb::Size::Unspecified) => Ok(None),
        Ok(pb::Size::Small) => Ok(Some(Size::Small)),
        Ok(pb::Size::Medium) => Ok(Some(Size::Medium)),
        Ok(pb::Size::Large) => Ok(Some(Size::Large)),
        Err(_) => Err(FieldViolation {
            field: "size",
            description: format!(
                "size {raw} is not a size: use SIZE_SMALL, SIZE_MEDIUM or SIZE_LARGE"
            ),
        }),
    }
}

impl From<OrderStatus> for pb::OrderStatus {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Queued => pb::OrderStatus::Queued,
            OrderStatus::Brewing => pb::OrderStatus::Brewing,
            OrderStatus::Ready => pb::OrderStatus::Ready,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatus::Failed => pb::OrderStatus::Failed,
        }
    }
}

/// Reads a status off the wire; `None` for unspecified or unknown values.
pub fn status_from_wire(raw: i32) -> Option<OrderStatus> {
    match pb::OrderStatus::try_from(raw).ok()? {
        pb::OrderStatus::Unspecified => None,
        pb::OrderStatus::Queued => Some(OrderStatus::Queued),
        pb::OrderStatus::Brewing => Some(OrderStatus::Brewing),
        pb::OrderStatus::Ready => Some(OrderStatus::Ready),
        pb::OrderStatus::Cancelled => Some(OrderStatus::Cancelled),
        pb::OrderStatus::Failed => Some(OrderStatus::Failed),
    }
}

/// A duration as a protobuf `Duration` (saturating; menu times are small).
pub fn duration_to_wire(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// A protobuf `Duration` as a std one; negative or missing is zero.
pub fn duration_from_wire(duration: Option<&prost_types::Duration>) -> Duration {
    duration
        .and_then(|d| Duration::try_from(*d).ok())
        .unwrap_or_default()
}

/// A protobuf `Timestamp` as a `SystemTime`, if it is one.
pub fn time_from_wire(time: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    time.and_then(|t| SystemTime::try_from(*t).ok())
}

/// A drink as the menu sends it.
pub fn drink_to_wire(drink: &Drink) -> pb::Drink {
    pb::Drink {
        id: drink.id.to_owned(),
        name: drink.name.to_owned(),
        brew_time: Some(duration_to_wire(drink.brew_time)),
        sizes: drink
            .sizes
            .iter()
            .map(|&s| pb::Size::from(s) as i32)
            .collect(),
    }
}

/// The whole menu as `GetMenu` returns it.
pub fn menu_to_wire(drinks: &[Drink], scale: TimeScale) -> pb::GetMenuResponse {
    pb::GetMenuResponse {
        drinks: drinks.iter().map(drink_to_wire).collect(),
        time_scale: scale.get(),
    }
}

impl From<&Order> for pb::Order {
    fn from(order: &Order) -> Self {
        pb::Order {
            id: order.id.to_string(),
            customer: order.customer.to_string(),
            drink: order.drink.id.to_owned(),
            size: pb::Size::from(order.size) as i32,
            status: pb::OrderStatus::from(order.status) as i32,
            barista: order.barista.as_deref().unwrap_or_default().to_owned(),
            placed_at: Some(order.placed_at.into()),
            started_at: order.started_at.map(Into::into),
            ready_at: order.ready_at.map(Into::into),
            note: order.note.as_deref().unwrap_or_default().to_owned(),
        }
    }
}

impl TryFrom<&pb::OrderRequest> for NewOrder {
    type Error = Vec<FieldViolation>;

    /// Checks every field of an order request (see [`NewOrder::parse`]).
    fn try_from(request: &pb::OrderRequest) -> Result<Self, Self::Error> {
        NewOrder::parse(
            &request.customer,
            &request.drink,
            size_from_wire(request.size),
            &request.request_id,
        )
    }
}

impl TryFrom<&pb::BrewRequest> for Cup {
    type Error = Vec<FieldViolation>;

    /// Checks the drink and size a barista is asked to brew (see
    /// [`Cup::parse`]); the same rules as for a customer's order.
    fn try_from(request: &pb::BrewRequest) -> Result<Self, Self::Error> {
        Cup::parse(&request.drink, size_from_wire(request.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_size_numbers_are_rejected_by_name() {
        let err = size_from_wire(7).unwrap_err();
        assert_eq!(err.field, "size");
        assert!(err.description.contains('7'));
        assert_eq!(size_from_wire(0), Ok(None));
        assert_eq!(size_from_wire(3), Ok(Some(Size::Large)));
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            OrderStatus::Queued,
            OrderStatus::Brewing,
            OrderStatus::Ready,
            OrderStatus::Cancelled,
            OrderStatus::Failed,
        ] {
            assert_eq!(
                status_from_wire(pb::OrderStatus::from(status) as i32),
                Some(status)
            );
        }
        assert_eq!(status_from_wire(0), None);
        assert_eq!(status_from_wire(99), None);
    }
}
