//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP`, `# TYPE`, then one line per sample, label values escaped.

use std::fmt::Write as _;

use super::registry::HistogramSnapshot;

/// The content type of [`Exposition::finish`]'s text.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family, as written in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (resets with the process).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds one exposition. Declare a family with [`family`](Self::family),
/// then write its samples; every family once.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Starts family `name` (already prefixed `troupe_`).
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut le = String::new();
        for &(bound, n) in &h.buckets {
            le.clear();
            push_value(&mut le, bound);
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {n}");
        }
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        push_value(&mut self.out, h.sum);
        self.out.push('\n');
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_complete() {
        let mut e = Exposition::new();
        e.family("troupe_x", Kind::Gauge, "An x.");
        e.sample("troupe_x", &[("w", "a\"b\\c\nd")], 2.0);
        e.family("troupe_h_seconds", Kind::Histogram, "An h.");
        let snap = HistogramSnapshot {
            buckets: vec![(0.5, 1), (1.0, 2)],
            count: 3,
            sum: 4.25,
        };
        e.histogram("troupe_h_seconds", &[("w", "a")], &snap);
        let text = e.finish();
        assert!(
            text.contains("troupe_x{w=\"a\\\"b\\\\c\\nd\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("troupe_h_seconds_bucket{w=\"a\",le=\"0.5\"} 1\n"));
        assert!(text.contains("troupe_h_seconds_bucket{w=\"a\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("troupe_h_seconds_sum{w=\"a\"} 4.25\n"));
        assert!(text.contains("troupe_h_seconds_count{w=\"a\"} 3\n"));
        assert!(text.contains("# TYPE troupe_h_seconds histogram\n"));
    }
}
