//! `cafe menu`: the drinks as the café lists them, with the brew time at the
//! café's own time scale, which is what you will actually wait.

use cafe_domain::{
    convert::duration_from_wire,
    proto::v1::{self as pb, GetMenuRequest},
};
use serde::Serialize;

use super::Finished;
use crate::{
    connection::Connection,
    error::ClientError,
    output::{Output, human, millis},
    view::size_name,
};

/// One drink, for `--json`: a `drink` event.
#[derive(Debug, Serialize)]
struct MenuItem<'a> {
    id: &'a str,
    name: &'a str,
    sizes: Vec<&'static str>,
    /// A medium cup at time scale 1.
    brew_time_ms: f64,
    /// A medium cup at this café's time scale.
    brew_time_here_ms: f64,
    time_scale: f64,
}

/// Fetches the menu and prints it as a table (or one JSON object per drink).
pub async fn run(connection: &mut Connection, out: &Output) -> Result<Finished, ClientError> {
    let menu = connection
        .cafe
        .get_menu(GetMenuRequest {})
        .await
        .map_err(|status| ClientError::from_status(status, &connection.url, None))?
        .into_inner();
    for line in table(&menu) {
        out.line(line)?;
    }
    for drink in &menu.drinks {
        let brew = duration_from_wire(drink.brew_time.as_ref());
        out.json(
            "drink",
            &MenuItem {
                id: &drink.id,
                name: &drink.name,
                sizes: drink.sizes.iter().map(|&s| size_name(s)).collect(),
                brew_time_ms: millis(brew),
                brew_time_here_ms: millis(brew.mul_f64(menu.time_scale)),
                time_scale: menu.time_scale,
            },
        )?;
    }
    Ok(Finished::Done)
}

/// The menu as lines of a table.
pub fn table(menu: &pb::GetMenuResponse) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<11} {:<13} {:<20} {:>9} {:>10}",
        "drink",
        "name",
        "sizes",
        "brew time",
        format!("at ×{}", menu.time_scale)
    )];
    for drink in &menu.drinks {
        let brew = duration_from_wire(drink.brew_time.as_ref());
        let sizes: Vec<&str> = drink.sizes.iter().map(|&s| size_name(s)).collect();
        lines.push(format!(
            "{:<11} {:<13} {:<20} {:>9} {:>10}",
            drink.id,
            drink.name,
            sizes.join(", "),
            human(brew),
            human(brew.mul_f64(menu.time_scale))
        ));
    }
    lines.push(format!(
        "Brew times are for a medium cup (small ×0.75, large ×1.5); this café runs at time scale {}.",
        menu.time_scale
    ));
    lines
}
