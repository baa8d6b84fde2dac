//! `troupe run`'s log lines and, with the `otel` feature, its traces over
//! OTLP: one subscriber with the formatting layer and, when `[telemetry]
//! otlpEndpoint` is set, the OpenTelemetry layer beside it.
//!
//! The spans are the ones the runtime always makes (a job attempt; each
//! model call, with the GenAI attributes `gen_ai.system`,
//! `gen_ai.request.model`, `gen_ai.usage.input_tokens` …; each tool call,
//! a child of its task's span across the ToolRouter's actor hop). Exported
//! in batches from a thread of the SDK's own, as OTLP JSON over HTTP, so a
//! slow or absent collector costs the engine nothing but dropped spans.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::TelemetrySection;

use super::run::LogFormat;
use super::CliError;

/// Keeps the exporter while the daemon runs; dropping it sends what is
/// still batched.
pub(super) struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("troupe: sending the last traces failed: {e}");
            }
        }
    }
}

/// Installs the process's subscriber: log lines in `format` (`RUST_LOG`
/// chooses what), and spans to the OTLP endpoint when one is configured.
pub(super) fn init(format: LogFormat, section: &TelemetrySection) -> Result<Telemetry, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).boxed(),
    };
    let (otel, telemetry) = otel_layer(section)?;
    let layers: Vec<BoxedLayer> = std::iter::once(fmt).chain(otel).collect();
    // A subscriber set already (a test harness) stays.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
    Ok(telemetry)
}

/// A layer over the filtered registry.
type BoxedLayer = Box<
    dyn Layer<
            tracing_subscriber::layer::Layered<
                tracing_subscriber::EnvFilter,
                tracing_subscriber::Registry,
            >,
        > + Send
        + Sync,
>;

#[cfg(not(feature = "otel"))]
fn otel_layer(section: &TelemetrySection) -> Result<(Option<BoxedLayer>, Telemetry), CliError> {
    match &section.otlp_endpoint {
        Some(_) => Err(CliError::Usage(
            "`telemetry.otlpEndpoint` is set, but this troupe was built without the `otel` \
             feature (build with `cargo build --release --features otel`)"
                .into(),
        )),
        None => Ok((None, Telemetry {})),
    }
}

#[cfg(feature = "otel")]
fn otel_layer(section: &TelemetrySection) -> Result<(Option<BoxedLayer>, Telemetry), CliError> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};

    let Some(endpoint) = &section.otlp_endpoint else {
        return Ok((None, Telemetry { provider: None }));
    };
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .build()
        .map_err(|e| {
            CliError::Usage(format!(
                "`telemetry.otlpEndpoint`: cannot export there: {e}"
            ))
        })?;
    let service = section
        .service_name
        .clone()
        .unwrap_or_else(|| "troupe".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("troupe");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
    Ok((
        Some(layer),
        Telemetry {
            provider: Some(provider),
        },
    ))
}
