//! `cafe demo`: the whole lesson with nothing else running.
//!
//! Opens a real café in this process on `127.0.0.1:0` (the same
//! `cafe_server::Application` that `cafe-server` runs, fast-forwarded with a
//! small time scale), sends it the same rush twice, sequential then
//! concurrent, and explains the two timelines with the numbers measured.
//! The café's own logs stay quiet (warnings only) unless `RUST_LOG` asks.

use std::time::Duration;

use cafe_core::{convert::duration_from_wire, proto::v1::GetMenuRequest};
use cafe_server::{Application, Config};
use tokio::{net::TcpListener, sync::oneshot};

use super::{
    Finished,
    rush::{self, Pace, Plan, Report},
};
use crate::{
    cli::{DemoArgs, RushMode},
    connection,
    error::ClientError,
    output::{Output, human},
};

/// Runs the demo.
pub async fn run(out: &Output, args: &DemoArgs) -> Result<Finished, ClientError> {
    let config = Config {
        baristas: u32::from(args.baristas),
        time_scale: args.time_scale,
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ClientError::Demo(format!("cannot listen on 127.0.0.1: {e}")))?;
    let app = Application::with_listener(config, listener);
    let addr = app.local_addr();
    // The café runs in its own task beside the demo. `close` is its
    // shutdown signal: sending on it (or dropping it, should the demo fail
    // early) resolves `closed`, and the café closes in order.
    let (close, closed) = oneshot::channel::<()>();
    let cafe = tokio::spawn(app.serve(async {
        let _ = closed.await;
    }));

    let result = demo(out, args, &format!("http://{addr}")).await;

    let _ = close.send(());
    // Nothing is in flight any more, so this is quick; the bound is there
    // so a stuck café cannot hold the demo open.
    let _ = tokio::time::timeout(Duration::from_secs(5), cafe).await;
    result
}

async fn demo(out: &Output, args: &DemoArgs, url: &str) -> Result<Finished, ClientError> {
    let mut connection = connection::connect(url).await?;
    let menu = connection
        .cafe
        .get_menu(GetMenuRequest {})
        .await
        .map_err(|s| ClientError::from_status(s, url, None))?
        .into_inner();
    let drink = menu
        .drinks
        .iter()
        .find(|d| d.id == args.drink)
        .ok_or_else(|| {
            ClientError::InvalidArgument(format!("{:?} is not on the menu", args.drink))
        })?;
    let menu_time = duration_from_wire(drink.brew_time.as_ref());
    out.line(format!(
        "A café is open in this process at {url} with {} baristas.",
        args.baristas
    ))?;
    out.line(format!(
        "Its clock runs at ×{}: a {} (menu: {}) should take about {} to brew.",
        menu.time_scale,
        drink.id,
        human(menu_time),
        human(menu_time.mul_f64(menu.time_scale))
    ))?;
    out.line("")?;

    let plan = Plan {
        customers: usize::from(args.customers),
        drink: args.drink.clone(),
        size: cafe_core::menu::Size::Medium,
    };
    let (finished, reports) = rush::run_plan(
        &mut connection,
        out,
        &plan,
        RushMode::Compare,
        plan.customers,
    )
    .await?;
    if finished == Finished::Done
        && let [sequential, concurrent] = reports.as_slice()
    {
        for line in explain(sequential, concurrent, args.baristas) {
            out.line(line)?;
        }
    }
    Ok(finished)
}

/// What the two runs show, in the numbers they measured.
fn explain(sequential: &Report, concurrent: &Report, baristas: u16) -> Vec<String> {
    let n = sequential.planned;
    let in_flight = match concurrent.pace {
        Pace::Concurrent { in_flight } => in_flight.min(n),
        Pace::Sequential => 1,
    };
    vec![
        String::new(),
        "What the two timelines show".into(),
        "  sequential: each customer waited for their drink before the next ordered.".into(),
        format!(
            "    The run took {}: the SUM of the {n} waits ({}).",
            human(sequential.wall),
            human(sequential.latency_sum())
        ),
        format!(
            "    Only one drink was ever brewing; {} of the {baristas} baristas stood idle.",
            baristas.saturating_sub(1)
        ),
        format!("  concurrent: all {in_flight} orders were in flight at once, on one connection."),
        format!(
            "    The run took {}: about the LONGEST single wait ({}).",
            human(concurrent.wall),
            human(concurrent.longest())
        ),
        format!(
            "    {baristas} baristas brew {baristas} drinks at a time: the others wait in line (░)."
        ),
        String::new(),
        "  Like a coffee and a book: wait for the coffee and then buy the book, and".into(),
        "  you pay both waits; order the coffee, buy the book while it brews, and you".into(),
        "  pay only the longer one. Waiting asynchronously is ordering the coffee.".into(),
        String::new(),
        "Now against a real server, in two terminals:".into(),
        "  cargo run --release --bin cafe-server -- --baristas 3 --time-scale 0.03".into(),
        "  cargo run --release --bin cafe -- rush --mode compare".into(),
    ]
}
