//! Faults to switch on: the café broken on purpose, so that a learner can
//! find the problem from its symptom (docs/debugging.md walks through each).
//!
//! A [`FaultSpec`] is one small parsed string, the same for the café
//! (`--faults`, `CAFE_FAULTS`) and a barista replica (`BARISTA_FAULTS`):
//! `slow-barista=0.2x10,flaky-barista=0.1,blocking-barista,slow-store=20ms,leak=4KiB`.
//! Every fault is off unless named. [`Faults`] is the live switch the
//! servers share: each brew, commit and order reads the spec in force *at
//! that moment*, so replacing it ([`Faults::set`], done on SIGHUP by
//! [`reload_on_hangup`]) breaks or mends a running café without a restart.
//!
//! "A fraction of brews" is counted, not drawn at random: with a fraction
//! `f`, brew number `n` is hit when `floor((n + 1) f)` passes `floor(n f)`,
//! so 0.2 is exactly every fifth brew. A test can say which brews are hit,
//! and a rush of 100 brews shows exactly 20 slow ones.

use std::{
    fmt,
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tracing::{info, warn};

use crate::brewing::BrewMode;

/// The most one order may leak (`leak=`): a typo of a few zeros too many
/// should be refused, not take the machine down.
pub const MAX_LEAK_PER_ORDER: u64 = 16 * 1024 * 1024;

/// Which faults are on; [`FaultSpec::default`] is none. Parsed from and
/// written as the `--faults` syntax.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// `slow-barista=FRACTIONxFACTOR[@NAME]`: that fraction of brews takes
    /// FACTOR times its brew time.
    pub slow_barista: Option<SlowBarista>,
    /// `flaky-barista=FRACTION[@NAME]`: that fraction of brews fails half-way.
    pub flaky_barista: Option<FlakyBarista>,
    /// `blocking-barista[@NAME]`: brews block their thread, as
    /// `--brew-mode blocking` does. The value is the one barista, if named.
    pub blocking_barista: Option<Option<String>>,
    /// `slow-store=DURATION`: each change the order store takes waits this
    /// much longer.
    pub slow_store: Option<Duration>,
    /// `leak=SIZE` (`4KiB`, `1MiB`, bytes if bare): each order keeps this
    /// much memory, never freed.
    pub leak: Option<u64>,
}

/// A slow barista: which brews, how much slower, whose.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowBarista {
    /// Fraction of brews that are slow, in (0, 1].
    pub fraction: f64,
    /// How many times the brew time a slow brew takes (at least 1).
    pub factor: f64,
    /// Only this barista's brews (e.g. `Ana`), or every barista's.
    pub only: Option<String>,
}

/// A flaky barista: which brews fail half-way, whose.
#[derive(Debug, Clone, PartialEq)]
pub struct FlakyBarista {
    /// Fraction of brews that fail, in (0, 1].
    pub fraction: f64,
    /// Only this barista's brews, or every barista's.
    pub only: Option<String>,
}

/// What the faults make of one brew.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrewPlan {
    /// How the barista waits: `blocking` if `blocking-barista` is on.
    pub mode: BrewMode,
    /// Multiplier on the brew time: the slow barista's FACTOR, or 1.
    pub stretch: f64,
    /// True if the brew fails half-way (`flaky-barista`).
    pub spoils: bool,
}

impl BrewPlan {
    /// How long the barista works on a drink of `brew_time`: stretched if
    /// slow, and only half of it if the drink is spoiled half-way.
    pub fn working_time(&self, brew_time: Duration) -> Duration {
        let stretched = brew_time.mul_f64(self.stretch);
        if self.spoils {
            stretched / 2
        } else {
            stretched
        }
    }
}

impl FaultSpec {
    /// True if no fault is on.
    pub fn is_none(&self) -> bool {
        *self == FaultSpec::default()
    }
}

fn matches(only: &Option<String>, barista: &str) -> bool {
    only.as_deref().is_none_or(|name| name == barista)
}

/// Whether brew number `n` (from 0) is one of a `fraction`'s: exactly
/// `floor(n × fraction)` of the first `n` brews are.
fn counted_in(fraction: f64, n: u64) -> bool {
    ((n + 1) as f64 * fraction).floor() > (n as f64 * fraction).floor()
}

fn parse_fraction(part: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(fraction) if fraction > 0.0 && fraction <= 1.0 => Ok(fraction),
        _ => Err(format!(
            "{part:?}: the fraction {value:?} must be a number above 0 and at most 1, e.g. 0.2"
        )),
    }
}

fn parse_size(part: &str, value: &str) -> Result<u64, String> {
    let (digits, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map_or((value, ""), |at| value.split_at(at));
    let scale = match unit {
        "" | "B" => Some(1),
        "KiB" => Some(1024),
        "MiB" => Some(1024 * 1024),
        _ => None,
    };
    match (digits.parse::<u64>(), scale) {
        (Ok(n), Some(scale)) if n > 0 && n.saturating_mul(scale) <= MAX_LEAK_PER_ORDER => {
            Ok(n * scale)
        }
        _ => Err(format!(
            "{part:?}: the size {value:?} must be 1 B to 16 MiB, written as 512, 4KiB or 1MiB"
        )),
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    /// Parses `part,part,…`; `none` or nothing is no fault. An error is one
    /// line naming the part it could not read and what it wants.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut spec = FaultSpec::default();
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(spec);
        }
        for part in text.split([',', '\n']).map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (head, only) = match part.split_once('@') {
                Some((head, name)) if !name.is_empty() => (head, Some(name.to_owned())),
                Some(_) => return Err(format!("{part:?}: a barista's name must follow '@'")),
                None => (part, None),
            };
            let (name, value) = head.split_once('=').unwrap_or((head, ""));
            let barista_only = |spec_name: &str| -> Result<(), String> {
                match &only {
                    Some(_) => Err(format!(
                        "{part:?}: {spec_name} is not a barista's fault; drop the '@'"
                    )),
                    None => Ok(()),
                }
            };
            match name {
                "slow-barista" => {
                    let Some((fraction, factor)) = value.split_once('x') else {
                        return Err(format!(
                            "{part:?}: slow-barista wants FRACTIONxFACTOR, e.g. slow-barista=0.2x10"
                        ));
                    };
                    let fraction = parse_fraction(part, fraction)?;
                    let factor = match factor.parse::<f64>() {
                        Ok(factor) if (1.0..=1000.0).contains(&factor) => factor,
                        _ => {
                            return Err(format!(
                                "{part:?}: the factor {factor:?} must be a number from 1 to 1000, e.g. 10"
                            ));
                        }
                    };
                    spec.slow_barista = Some(SlowBarista {
                        fraction,
                        factor,
                        only,
                    });
                }
                "flaky-barista" => {
                    let fraction = parse_fraction(part, value)?;
                    spec.flaky_barista = Some(FlakyBarista { fraction, only });
                }
                "blocking-barista" if value.is_empty() => spec.blocking_barista = Some(only),
                "blocking-barista" => {
                    return Err(format!("{part:?}: blocking-barista takes no value"));
                }
                "slow-store" => {
                    barista_only(name)?;
                    let delay = humantime::parse_duration(value).map_err(|_| {
                        format!("{part:?}: the delay {value:?} must be a duration, e.g. 20ms")
                    })?;
                    spec.slow_store = Some(delay);
                }
                "leak" => {
                    barista_only(name)?;
                    spec.leak = Some(parse_size(part, value)?);
                }
                _ => {
                    return Err(format!(
                        "{part:?} is not a fault: use slow-barista, flaky-barista, \
                         blocking-barista, slow-store or leak (docs/debugging.md)"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    /// The spec in the syntax it is parsed from; `none` for no fault.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |only: &Option<String>| only.as_ref().map(|n| format!("@{n}")).unwrap_or_default();
        let mut parts = Vec::new();
        if let Some(slow) = &self.slow_barista {
            parts.push(format!(
                "slow-barista={}x{}{}",
                slow.fraction,
                slow.factor,
                at(&slow.only)
            ));
        }
        if let Some(flaky) = &self.flaky_barista {
            parts.push(format!(
                "flaky-barista={}{}",
                flaky.fraction,
                at(&flaky.only)
            ));
        }
        if let Some(only) = &self.blocking_barista {
            parts.push(format!("blocking-barista{}", at(only)));
        }
        if let Some(delay) = self.slow_store {
            parts.push(format!("slow-store={}", humantime::format_duration(delay)));
        }
        if let Some(bytes) = self.leak {
            parts.push(format!("leak={bytes}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// The faults in force, shared by every part of a server that can be
/// broken; cloning shares the same switch.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Live>);

#[derive(Debug, Default)]
struct Live {
    /// A std lock: read for a moment by each brew and commit, replaced by a
    /// reload; never held across `.await`.
    spec: RwLock<Arc<FaultSpec>>,
    /// Brews the slow and the flaky fault have counted, for their fractions.
    slow_counted: AtomicU64,
    flaky_counted: AtomicU64,
}

impl Faults {
    /// A switch set to `spec`.
    pub fn new(spec: FaultSpec) -> Self {
        let faults = Faults::default();
        faults.set(spec);
        faults
    }

    /// The spec in force now.
    pub fn spec(&self) -> Arc<FaultSpec> {
        Arc::clone(&self.0.spec.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `spec` in force from the next brew, commit or order on.
    pub fn set(&self, spec: FaultSpec) {
        *self.0.spec.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spec);
    }

    /// What the faults make of `barista`'s next brew, whose mode is
    /// otherwise `mode` (`--brew-mode`).
    pub fn plan_brew(&self, barista: &str, mode: BrewMode) -> BrewPlan {
        let spec = self.spec();
        let mut plan = BrewPlan {
            mode,
            stretch: 1.0,
            spoils: false,
        };
        if spec
            .blocking_barista
            .as_ref()
            .is_some_and(|only| matches(only, barista))
        {
            plan.mode = BrewMode::Blocking;
        }
        if let Some(slow) = spec
            .slow_barista
            .as_ref()
            .filter(|s| matches(&s.only, barista))
        {
            let n = self.0.slow_counted.fetch_add(1, Ordering::Relaxed);
            if counted_in(slow.fraction, n) {
                plan.stretch = slow.factor;
            }
        }
        if let Some(flaky) = spec
            .flaky_barista
            .as_ref()
            .filter(|s| matches(&s.only, barista))
        {
            let n = self.0.flaky_counted.fetch_add(1, Ordering::Relaxed);
            plan.spoils = counted_in(flaky.fraction, n);
        }
        plan
    }

    /// The slow store's extra delay per change, if that fault is on.
    pub fn slow_store(&self) -> Option<Duration> {
        self.spec().slow_store
    }

    /// With `leak` on: keeps that many bytes for good, for one order.
    /// Written to, so the pages are really taken (RSS grows, not only the
    /// address space); leaked, so nothing ever frees them.
    pub fn leak_for_one_order(&self) {
        if let Some(bytes) = self.spec().leak {
            let kept: &'static mut [u8] = Box::leak(vec![0xA5; bytes as usize].into_boxed_slice());
            // Seen by the optimiser as used, so the allocation is not elided.
            std::hint::black_box(kept);
        }
    }
}

/// The faults a server starts with: `--faults-file`'s if given, else
/// `--faults`; said out loud when any is on. With a file, spawns
/// [`reload_on_hangup`] for the rest of the process's life (a server's
/// runtime is needed); without one, SIGHUP is left to whoever else
/// listens (the TLS reload), or to its default.
pub fn switch_on(spec: &FaultSpec, file: Option<&std::path::Path>) -> Faults {
    let spec = match file.map(read_spec) {
        Some(Ok(spec)) => spec,
        Some(Err(error)) => {
            warn!(%error, "no faults switched on");
            FaultSpec::default()
        }
        None => spec.clone(),
    };
    if !spec.is_none() {
        warn!(faults = %spec, "faults switched on: this server is broken on purpose");
    }
    let faults = Faults::new(spec);
    if let Some(file) = file {
        // Detached: it lives as long as the runtime, with its own handle.
        tokio::spawn(reload_on_hangup(faults.clone(), file.to_owned()));
    }
    faults
}

/// Until the process ends: on each SIGHUP, reads `file` (a spec, parts on
/// lines or comma-separated) and puts it in force. A bad file leaves the
/// faults as they were and says why. A running process's environment
/// cannot be changed from outside, hence a file: `--faults-file` names it.
pub async fn reload_on_hangup(faults: Faults, file: PathBuf) {
    // Installing the handler replaces SIGHUP's default (end the process).
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return warn!("SIGHUP cannot be handled here: faults are fixed for this run");
    };
    while hangups.recv().await.is_some() {
        match read_spec(&file) {
            Ok(spec) => {
                info!(faults = %spec, file = %file.display(), "SIGHUP: faults re-read");
                faults.set(spec);
            }
            Err(error) => warn!(%error, "SIGHUP: faults unchanged"),
        }
    }
}

/// `--faults-file`: a file whose spec reads now (so a bad one is refused
/// at start, in one line), as a path to read again on SIGHUP.
pub fn parse_file(file: &str) -> Result<PathBuf, String> {
    let file = PathBuf::from(file);
    read_spec(&file)?;
    Ok(file)
}

/// The spec in `file`; an error names the file.
pub fn read_spec(file: &std::path::Path) -> Result<FaultSpec, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("cannot read the faults file {}: {error}", file.display()))?;
    text.parse()
        .map_err(|error| format!("the faults file {}: {error}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_and_prints_back() {
        let text =
            "slow-barista=0.2x10@Ana,flaky-barista=0.1,blocking-barista,slow-store=20ms,leak=4KiB";
        let spec: FaultSpec = text.parse().unwrap();
        assert_eq!(
            spec.slow_barista.as_ref().unwrap().only.as_deref(),
            Some("Ana")
        );
        assert_eq!(spec.slow_store, Some(Duration::from_millis(20)));
        assert_eq!(spec.leak, Some(4096));
        assert_eq!(
            spec.to_string(),
            "slow-barista=0.2x10@Ana,flaky-barista=0.1,blocking-barista,slow-store=20ms,leak=4096"
        );
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("none".parse::<FaultSpec>().unwrap().is_none());
        assert!("".parse::<FaultSpec>().unwrap().is_none());
    }

    #[test]
    fn a_bad_part_is_named_in_one_line() {
        for (bad, says) in [
            (
                "slow-barista=0.2",
                "\"slow-barista=0.2\": slow-barista wants FRACTIONxFACTOR",
            ),
            ("flaky-barista=2", "\"flaky-barista=2\": the fraction \"2\""),
            ("slow-store=soon", "\"slow-store=soon\": the delay"),
            ("leak=1GiB", "\"leak=1GiB\": the size"),
            ("leak=4KiB@Ana", "not a barista's fault"),
            (
                "slow-store=1ms,fast-barista",
                "\"fast-barista\" is not a fault",
            ),
        ] {
            let error = bad.parse::<FaultSpec>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
            assert!(!error.contains('\n'), "{bad}: {error}");
        }
    }

    #[test]
    fn a_fraction_is_counted_exactly() {
        let faults = Faults::new("slow-barista=0.2x10,flaky-barista=0.5@Ben".parse().unwrap());
        let slow: Vec<bool> = (0..10)
            .map(|_| faults.plan_brew("Ana", BrewMode::Async).stretch > 1.0)
            .collect();
        // Every fifth brew.
        assert_eq!(slow.iter().filter(|s| **s).count(), 2);
        assert!(slow[4] && slow[9]);
        // Ana is never flaky; Ben is every other brew.
        assert!((0..4).all(|_| !faults.plan_brew("Ana", BrewMode::Async).spoils));
        let ben: Vec<bool> = (0..4)
            .map(|_| faults.plan_brew("Ben", BrewMode::Async).spoils)
            .collect();
        assert_eq!(ben, [false, true, false, true]);
    }

    #[test]
    fn switching_off_takes_effect_at_the_next_brew() {
        let faults = Faults::new("blocking-barista,slow-barista=1x3".parse().unwrap());
        let plan = faults.plan_brew("Ana", BrewMode::Async);
        assert_eq!((plan.mode, plan.stretch), (BrewMode::Blocking, 3.0));
        assert_eq!(
            plan.working_time(Duration::from_secs(2)),
            Duration::from_secs(6)
        );
        faults.set(FaultSpec::default());
        let plan = faults.plan_brew("Ana", BrewMode::Async);
        assert_eq!(
            (plan.mode, plan.stretch, plan.spoils),
            (BrewMode::Async, 1.0, false)
        );
    }
}
