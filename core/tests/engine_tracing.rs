//! The engine's tracing spans, seen through a small recording layer.

mod common;

use std::collections::BTreeMap;
use std::fmt;

use common::{Log, policy, run};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Engine, StepError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Debug, PartialEq)]
struct SpanRecord {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<&'static str, String>,
}

struct Recorder(Log<SpanRecord>);

struct Fields(BTreeMap<&'static str, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        attrs.record(&mut fields);
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name());
        self.0.push(SpanRecord {
            name: attrs.metadata().name(),
            parent,
            fields: fields.0,
        });
    }
}

fn span(
    name: &'static str,
    parent: Option<&'static str>,
    fields: &[(&'static str, &str)],
) -> SpanRecord {
    SpanRecord {
        name,
        parent,
        fields: fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn spans_carry_the_run_id_the_step_and_the_attempt() {
    let log = Log::new();
    let subscriber = tracing_subscriber::registry().with(Recorder(log.clone()));
    let _default = tracing::subscriber::set_default(subscriber);

    let mut b = Builder::<()>::new("Traced");
    let first = b.step(
        "fetch",
        StepOptions::new().retry(policy(10, 1.0, None, 2)),
        (),
        |ctx, ()| async move {
            if ctx.attempt() == 1 {
                Err(StepError::new("flaky"))
            } else {
                Ok(1_u8)
            }
        },
    );
    b.step("store", StepOptions::new(), (first,), |_, (_,)| async {
        Ok::<_, StepError>(())
    });
    run(&Engine::ephemeral(), &b.build(), "run-7", ())
        .await
        .expect("completes");

    let run_id = ("run_id", "run-7");
    assert_eq!(
        log.items(),
        [
            span("run", None, &[run_id, ("workflow", "Traced")]),
            span("step", Some("run"), &[run_id, ("step", "fetch")]),
            span(
                "attempt",
                Some("step"),
                &[run_id, ("step", "fetch"), ("attempt", "1")]
            ),
            span(
                "attempt",
                Some("step"),
                &[run_id, ("step", "fetch"), ("attempt", "2")]
            ),
            span("step", Some("run"), &[run_id, ("step", "store")]),
            span(
                "attempt",
                Some("step"),
                &[run_id, ("step", "store"), ("attempt", "1")]
            ),
        ]
    );
}
