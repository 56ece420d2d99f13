//! The standard `OTEL_*` variables that shape export, read in one place:
//! which traces are kept (the sampler) and how finished spans travel to the
//! collector (the batch span processor's queue, batch size, delay and
//! concurrent exports, and the export's time limit).
//!
//! Why read them here when the SDK reads most of them itself? The SDK reads
//! `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` from the process environment
//! straight into private fields, so nothing outside it can see the values
//! in effect, nor set them from anything but the real environment. We need
//! the values (the queue's capacity is where spans are counted as dropped,
//! and the exporter runs the concurrent exports that the SDK's thread-based
//! processor ignores), and tests must set them without `std::env::set_var`.
//! So they are read from a lookup function (the environment, or a test's
//! map), with the SDK's names, syntax and fallbacks, and handed to the SDK
//! explicitly.
//!
//! # Sized for a rush
//!
//! The SDK's defaults are for a quiet service: under the benchmark's rush
//! its queue overflows at the first pause of the export thread. Ours ride
//! out such pauses; `examples/span_load.rs` in `cafe-testkit` replays the
//! café's spans through this whole pipeline to check, and
//! `docs/performance.md` ("The span export queue and batches") has what it
//! measured.

use std::time::Duration;

use opentelemetry_sdk::trace::{BatchConfig, BatchConfigBuilder, Sampler};

/// Spans waiting for export before new ones are dropped: enough for the
/// benchmark's rush to go on while batches are on the wire, the export
/// threads wait for a core, or the collector pauses. Memory is taken as
/// spans wait (what a full queue costs: `docs/performance.md`); an empty
/// one costs nothing. `OTEL_BSP_MAX_QUEUE_SIZE`.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 65_536;

/// Spans per export request: fewer, larger requests for the same spans, and
/// a batch still well under the message size that gRPC servers, collectors
/// included, accept by default (see `docs/performance.md`).
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
pub const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 4_096;

/// How long a span may wait when the batch does not fill: the SDK's 5 s.
/// Under load the batch size triggers exports long before; a quiet service
/// sends every 5 s and at exit. `OTEL_BSP_SCHEDULE_DELAY` (ms).
pub const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_secs(5);

/// Exports on the wire at once, so that encoding the next batch overlaps
/// the collector's answer to the previous one. `OTEL_BSP_MAX_CONCURRENT_EXPORTS`.
pub const DEFAULT_MAX_CONCURRENT_EXPORTS: usize = 2;

/// How long one export (all its retries included) may take: 1 s, not the
/// spec's 10 s, so that a short-lived process does not hang at exit on an
/// unreachable collector. `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// What shapes export, from the standard variables.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Which traces are recorded: `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG`; default `parentbased_always_on`.
    pub sampler: Sampler,
    /// The queue's capacity, in spans.
    pub max_queue_size: usize,
    /// The longest wait before a partial batch is sent.
    pub scheduled_delay: Duration,
    /// Spans per export request (at most the queue's capacity).
    pub max_export_batch_size: usize,
    /// Export requests in flight at once (at least 1).
    pub max_concurrent_exports: usize,
    /// One export's time limit, retries included.
    pub export_timeout: Duration,
    /// Headers sent with every export (a collector's API key, say):
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `key=value` pairs separated by commas, values percent-decoded.
    pub headers: Vec<(String, String)>,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings::from_lookup(|_| None)
    }
}

impl ExportSettings {
    /// The settings from the process environment.
    pub fn from_env() -> Self {
        ExportSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from `lookup` (a variable's name to its value), with
    /// the SDK's rules: a value that does not parse is ignored, and a batch
    /// larger than the queue is cut to the queue.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str| lookup(name)?.trim().parse::<u64>().ok();
        let max_queue_size = number("OTEL_BSP_MAX_QUEUE_SIZE")
            .map_or(DEFAULT_MAX_QUEUE_SIZE, |size| size as usize)
            .max(1);
        let max_export_batch_size = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .map_or(DEFAULT_MAX_EXPORT_BATCH_SIZE, |size| size as usize)
            .clamp(1, max_queue_size);
        let export_timeout = number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| number("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis);
        ExportSettings {
            sampler: sampler(
                lookup("OTEL_TRACES_SAMPLER").as_deref(),
                lookup("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            ),
            max_queue_size,
            scheduled_delay: number("OTEL_BSP_SCHEDULE_DELAY")
                .map_or(DEFAULT_SCHEDULED_DELAY, Duration::from_millis),
            max_export_batch_size,
            max_concurrent_exports: number("OTEL_BSP_MAX_CONCURRENT_EXPORTS")
                .map_or(DEFAULT_MAX_CONCURRENT_EXPORTS, |n| n as usize)
                .max(1),
            export_timeout,
            headers: lookup("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .or_else(|| lookup("OTEL_EXPORTER_OTLP_HEADERS"))
                .map(|list| headers(&list))
                .unwrap_or_default(),
        }
    }

    /// The batch processor's configuration. (The SDK's builder also reads
    /// the environment; every value it uses is set again here. Concurrent
    /// exports are left out: its thread-based processor ignores them, and
    /// our exporter runs them, see `export.rs`.)
    pub(super) fn batch_config(&self) -> BatchConfig {
        BatchConfigBuilder::default()
            .with_max_queue_size(self.max_queue_size)
            .with_scheduled_delay(self.scheduled_delay)
            .with_max_export_batch_size(self.max_export_batch_size)
            .build()
    }
}

/// A headers list as the OTLP exporters read it: an entry without `=` or
/// with an empty key is skipped, a value that is not valid percent-encoded
/// UTF-8 is kept as written.
fn headers(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            let (key, value) = (key.trim(), value.trim());
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_or_else(|_| value.to_owned(), |decoded| decoded.into_owned());
            (!key.is_empty()).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// `OTEL_TRACES_SAMPLER` as the SDK reads it (same names, same fallbacks:
/// a missing or bad ratio is 1.0, an unknown name is the default).
fn sampler(name: Option<&str>, arg: Option<&str>) -> Sampler {
    let ratio = || {
        arg.and_then(|arg| arg.trim().parse::<f64>().ok())
            .unwrap_or(1.0)
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    match name.map(str::trim) {
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()),
        Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent_based(Sampler::TraceIdRatioBased(ratio())),
        _ => parent_based(Sampler::AlwaysOn),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> ExportSettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        ExportSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_sized_for_a_rush() {
        let settings = from(&[]);
        assert_eq!(settings.max_queue_size, DEFAULT_MAX_QUEUE_SIZE);
        assert_eq!(
            settings.max_export_batch_size,
            DEFAULT_MAX_EXPORT_BATCH_SIZE
        );
        assert_eq!(settings.scheduled_delay, DEFAULT_SCHEDULED_DELAY);
        assert_eq!(
            settings.max_concurrent_exports,
            DEFAULT_MAX_CONCURRENT_EXPORTS
        );
        assert_eq!(settings.export_timeout, DEFAULT_EXPORT_TIMEOUT);
        assert!(matches!(settings.sampler, Sampler::ParentBased(_)));
    }

    #[test]
    fn the_standard_variables_are_honoured() {
        let settings = from(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "4"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert_eq!(settings.max_queue_size, 100);
        // A batch never exceeds the queue.
        assert_eq!(settings.max_export_batch_size, 100);
        assert_eq!(settings.scheduled_delay, Duration::from_millis(250));
        assert_eq!(settings.max_concurrent_exports, 4);
        assert_eq!(settings.export_timeout, Duration::from_secs(3));
        assert!(matches!(settings.sampler, Sampler::TraceIdRatioBased(r) if r == 0.25));
        // The traces-specific timeout wins over the general one.
        let settings = from(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "200"),
        ]);
        assert_eq!(settings.export_timeout, Duration::from_millis(200));
    }

    #[test]
    fn headers_are_read_as_the_otlp_exporters_read_them() {
        let settings = from(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s3cr%3Dt, x-team = cafe ,broken,=nokey",
        )]);
        assert_eq!(
            settings.headers,
            [
                ("api-key".to_owned(), "s3cr=t".to_owned()),
                ("x-team".to_owned(), "cafe".to_owned()),
            ]
        );
        // The traces-specific list wins over the general one.
        let settings = from(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
        ]);
        assert_eq!(settings.headers, [("b".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn bad_values_fall_back_as_the_sdk_does() {
        let settings = from(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ]);
        assert_eq!(settings.max_queue_size, DEFAULT_MAX_QUEUE_SIZE);
        assert!(matches!(settings.sampler, Sampler::ParentBased(_)));
        assert!(matches!(
            from(&[("OTEL_TRACES_SAMPLER", "always_off")]).sampler,
            Sampler::AlwaysOff
        ));
        assert!(matches!(
            from(&[("OTEL_TRACES_SAMPLER", "no_such_sampler")]).sampler,
            Sampler::ParentBased(_)
        ));
    }
}
