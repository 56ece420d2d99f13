//! The `cafe.v1.Barista` gRPC service: one `Brew` call per drink, answered
//! with a stream of `started`, then `finished`; and `GetStation`, which
//! tells the café how many baristas there are and how many are busy.
//!
//! A `Brew` call takes a free barista before it answers, or answers
//! RESOURCE_EXHAUSTED at once: the replica keeps no queue (see
//! [`crate::station`] for why). Then it spawns a producer task that writes
//! into an mpsc channel whose other end is the response stream. The task
//! brews and watches `tx.closed()` the whole time: when the café drops the
//! stream (its customer left, the order was cancelled, the deadline passed),
//! tonic drops the receiver, `closed()` fires, the task ends, and the
//! barista it held is free for the next drink *at once*, not when the
//! abandoned drink would have been done.
//!
//! Each brew asks the faults in force (`--faults`) how it goes: slower, in
//! blocking mode, or spoiled half-way, answered INTERNAL (an error the
//! server owes, counted in its error ratio), which the café takes as "brew
//! it again" on whichever barista is free next.

use std::{pin::Pin, sync::Arc, time::SystemTime};

use cafe_domain::{
    convert::size_from_wire,
    menu::TimeScale,
    order::{Cup, FieldViolation},
    proto::v1::{self as pb, barista_server::Barista, brew_event::Event},
};
use grpc_serving::deadline::CallerDeadline;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, warn};

use cafe_domain::{
    brewing::{self, BrewMode},
    faults::{BrewPlan, Faults},
};

use crate::{
    error::BaristaError,
    station::{OnShift, Station, Taken},
};

/// The longest order id the barista accepts (it only logs it).
pub const MAX_ORDER_ID_CHARS: usize = 64;

/// A stream of brew events, as `Brew` returns it.
pub type BrewStream = Pin<Box<dyn Stream<Item = Result<pb::BrewEvent, Status>> + Send>>;

/// The barista backend's gRPC face.
#[derive(Debug, Clone)]
pub struct BaristaService {
    station: Arc<Station>,
    /// `--name`: put before each barista's name, e.g. `barista-2/Ana`.
    replica: Arc<str>,
    time_scale: TimeScale,
    brew_mode: BrewMode,
    /// Every brew task, so shutdown can wait for the drinks in hand.
    brews: TaskTracker,
    /// The faults in force (`--faults`); none unless switched on.
    faults: Faults,
}

impl BaristaService {
    /// A service brewing on `station`; `brews` tracks the brew tasks.
    pub fn new(
        station: Arc<Station>,
        replica: &str,
        time_scale: TimeScale,
        brew_mode: BrewMode,
        brews: TaskTracker,
    ) -> Self {
        BaristaService {
            station,
            replica: replica.into(),
            time_scale,
            brew_mode,
            brews,
            faults: Faults::default(),
        }
    }

    /// This service, its brews broken by `faults`.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// Checks a brew request: the drink and size as the café checks them
/// ([`Cup::parse`]), and an order id that is safe to log.
pub fn check(request: &pb::BrewRequest) -> Result<Cup, BaristaError> {
    let mut violations: Vec<FieldViolation> = Vec::new();
    let id = &request.order_id;
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ORDER_ID_CHARS || id.chars().any(char::is_control) {
        violations.push(FieldViolation {
            field: "order_id",
            description: format!(
                "order_id must be 1 to {MAX_ORDER_ID_CHARS} characters without control characters"
            ),
        });
    }
    let cup = Cup::parse(&request.drink, size_from_wire(request.size))
        .map_err(|cup_violations| violations.extend(cup_violations))
        .ok();
    match cup {
        Some(cup) if violations.is_empty() => Ok(cup),
        _ => Err(BaristaError::InvalidRequest(violations)),
    }
}

#[tonic::async_trait]
impl Barista for BaristaService {
    type BrewStream = BrewStream;

    #[tracing::instrument(skip_all, fields(order.id = %request.get_ref().order_id, drink = %request.get_ref().drink))]
    async fn brew(
        &self,
        request: Request<pb::BrewRequest>,
    ) -> Result<Response<BrewStream>, Status> {
        let deadline = CallerDeadline::of(&request);
        let cup = check(request.get_ref())?;
        // A barista now, or an answer now: no hidden line here.
        let barista = self.station.take_free().map_err(|taken| match taken {
            Taken::Closed => BaristaError::Closing(self.replica.to_string()),
            Taken::Full => BaristaError::Busy {
                replica: self.replica.to_string(),
                baristas: self.station.size(),
            },
        })?;
        let (tx, rx) = mpsc::channel(2);
        let plan = self.faults.plan_brew(barista.name(), self.brew_mode);
        self.faults.leak_for_one_order();
        let brew = Brew {
            barista,
            replica: Arc::clone(&self.replica),
            brew_time: plan.working_time(cup.drink.brew_time_for(cup.size, self.time_scale)),
            brew_mode: plan.mode,
            plan,
            deadline,
            tx,
        };
        // The task is tracked, so a shutting-down replica can wait for it;
        // it owns the sender, so the stream ends when the task does. It logs
        // in this call's span (order id, drink), which outlives the call.
        self.brews.spawn(brew.run().in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_station(
        &self,
        _request: Request<pb::GetStationRequest>,
    ) -> Result<Response<pb::Station>, Status> {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Response::new(pb::Station {
            name: self.replica.to_string(),
            baristas: count(self.station.size()),
            busy: count(self.station.busy()),
            time_scale: self.time_scale.get(),
        }))
    }
}

/// One drink on its way, owned by its producer task.
struct Brew {
    /// The barista taken for it; freed when the task ends.
    barista: OnShift,
    replica: Arc<str>,
    brew_time: std::time::Duration,
    brew_mode: BrewMode,
    /// What the faults make of this brew (spoiled half-way?).
    plan: BrewPlan,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Result<pb::BrewEvent, Status>>,
}

impl Brew {
    async fn run(self) {
        // A caller without a deadline waits as long as it takes.
        let deadline = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);

        // 1. The barista taken in the call picks the drink up.
        let who = format!("{}/{}", self.replica, self.barista.name());
        let fault = if self.plan.spoils {
            "flaky-barista"
        } else if self.plan.stretch > 1.0 {
            "slow-barista"
        } else {
            "none"
        };
        info!(barista = %who, brew_time = ?self.brew_time, fault, "brewing");
        if !self
            .send(Event::Started(pb::BrewStarted {
                barista: who.clone(),
                started_at: Some(SystemTime::now().into()),
            }))
            .await
        {
            return info!(barista = %who, "the caller left; the barista is free again");
        }

        // 2. Brew. If the caller goes away first, `select!` drops the brewing
        // future (stopping its timer) and then `self.barista` is dropped at
        // the end of this function: the barista is free for the next drink
        // at once, before the stream ends (so a caller that sees the stream
        // end may count the barista free).
        tokio::select! {
            biased;
            () = self.tx.closed() => info!(barista = %who, "the caller left: brew stopped, the barista is free again"),
            () = &mut deadline => self.deadline_passed().await,
            () = brewing::brew(self.brew_mode, self.brew_time) => {
                if self.plan.spoils {
                    warn!(barista = %who, "spoiled the drink half-way (fault flaky-barista)");
                    let status = Status::internal(format!(
                        "{who} spoiled the drink half-way (fault flaky-barista): brew it again"
                    ));
                    let _ = self.tx.send(Err(status)).await;
                    return;
                }
                let finished = pb::BrewFinished { finished_at: Some(SystemTime::now().into()) };
                if self.send(Event::Finished(finished)).await {
                    info!(barista = %who, "finished");
                }
            }
        }
        // `self` (the barista, then the sender) drops here: the barista is
        // free before the stream's end is sent.
    }

    /// Sends one event; false if the caller has gone.
    async fn send(&self, event: Event) -> bool {
        let event = pb::BrewEvent { event: Some(event) };
        self.tx.send(Ok(event)).await.is_ok()
    }

    async fn deadline_passed(&self) {
        info!("the caller's deadline passed: brew stopped");
        let status =
            Status::deadline_exceeded("the caller's deadline passed before the drink was finished");
        let _ = self.tx.send(Err(status)).await;
    }
}
