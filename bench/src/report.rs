//! A measured figure beside its baseline and target, and the two ways of printing a set of them:
//! a Markdown table (pasted into `BENCHMARKS.md` as printed) and JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// What a row's numbers count; values are stored in this unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Micros,
    Millis,
    PerSecond,
    Kib,
    Bytes,
    Count,
    /// A count per something, shown with one decimal.
    Ratio,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::PerSecond => "calls/s",
            Unit::Kib => "KiB",
            Unit::Bytes => "bytes",
            Unit::Count | Unit::Ratio => "",
        }
    }

    fn format(self, value: f64) -> String {
        let number = match self {
            Unit::Micros | Unit::PerSecond | Unit::Kib | Unit::Bytes | Unit::Count => {
                format!("{value:.0}")
            }
            Unit::Millis | Unit::Ratio => format!("{value:.1}"),
        };
        match self.name() {
            "" => number,
            unit => format!("{number} {unit}"),
        }
    }
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub unit: Unit,
    pub gateway: Option<f64>,
    pub baseline: Option<f64>,
    /// The target in words, `—` when the issue sets none.
    pub target: String,
    /// `None` when there is no target, or it could not be measured.
    pub met: Option<bool>,
    /// What the baseline is, or why a value is missing.
    pub note: String,
}

impl Row {
    pub fn new(figure: impl Into<String>, unit: Unit) -> Row {
        Row {
            figure: figure.into(),
            unit,
            gateway: None,
            baseline: None,
            target: "—".into(),
            met: None,
            note: String::new(),
        }
    }

    pub fn gateway(mut self, value: f64) -> Row {
        self.gateway = Some(value);
        self
    }

    pub fn baseline(mut self, value: f64) -> Row {
        self.baseline = Some(value);
        self
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    /// A target that this run could not check (the value is missing).
    pub fn unchecked_target(mut self, target: impl Into<String>) -> Row {
        self.target = target.into();
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        match (self.gateway, self.baseline) {
            (Some(gateway), Some(baseline)) if baseline > 0.0 => Some(gateway / baseline),
            _ => None,
        }
    }
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| figure | gateway | baseline | ratio | target | met? | notes |\n|---|---:|---:|---:|---|---|---|\n",
    );
    let value =
        |row: &Row, v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| row.unit.format(v));
    for row in rows {
        let ratio = row
            .ratio()
            .map_or_else(|| "—".to_owned(), |r| format!("×{r:.2}"));
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.figure,
            value(row, row.gateway),
            value(row, row.baseline),
            ratio,
            row.target,
            met,
            row.note
        );
    }
    out
}

/// The rows as a JSON array.
pub fn json(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|row| {
                json!({
                    "figure": row.figure,
                    "unit": row.unit.name(),
                    "gateway": row.gateway,
                    "baseline": row.baseline,
                    "ratio": row.ratio(),
                    "target": row.target,
                    "met": row.met,
                    "note": row.note,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_ratio_and_verdict() {
        let rows = [
            Row::new("p50", Unit::Micros)
                .gateway(330.0)
                .baseline(300.0)
                .target("≤ ×1.10", true),
            Row::new("size", Unit::Bytes).note("not built"),
        ];
        let text = table(&rows);
        assert!(
            text.contains("| p50 | 330 µs | 300 µs | ×1.10 | ≤ ×1.10 | yes |"),
            "{text}"
        );
        assert!(
            text.contains("| size | — | — | — | — | — | not built |"),
            "{text}"
        );
        let value = json(&rows);
        assert_eq!(value[0]["ratio"], 1.1);
        assert_eq!(value[1]["met"], Value::Null);
    }
}
