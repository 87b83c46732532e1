//! The report: a row per metric with its target, a scenario's repeats reduced to each side's
//! best, the ratios, and the Markdown table the benchmark prints.

use std::{fmt::Write as _, time::Duration};

/// One measured metric of one scenario, both sides.
pub struct Row {
    /// The scenario's number and name; the table is sorted by it.
    pub scenario: &'static str,
    /// What was measured, in words and unit.
    pub metric: String,
    /// orderflow's value.
    pub orderflow: f64,
    /// The baseline's value, where there is a baseline.
    pub baseline: Option<f64>,
    /// Whether more is better (throughput) or less (time, memory); picks the best of repeats.
    pub more_is_better: bool,
    /// The target the value is held to.
    pub rule: Rule,
}

/// A target.
#[derive(Clone, Copy)]
pub enum Rule {
    /// For information only.
    None,
    /// orderflow ≥ x × baseline.
    RatioAtLeast(f64),
    /// orderflow ≤ x × baseline.
    RatioAtMost(f64),
    /// orderflow < x (absolute).
    Below(f64, &'static str),
}

impl Row {
    /// The target in words, for the table.
    fn target(&self) -> String {
        match self.rule {
            Rule::None => "-".into(),
            Rule::RatioAtLeast(x) => format!("≥ {x} × baseline"),
            Rule::RatioAtMost(x) => format!("≤ {x} × baseline"),
            Rule::Below(x, unit) => format!("< {x} {unit}"),
        }
    }

    /// Whether the target is met; `None` where there is none (or no baseline to compare with).
    fn pass(&self) -> Option<bool> {
        match (self.rule, self.baseline) {
            (Rule::None, _) => None,
            (Rule::RatioAtLeast(x), Some(b)) => Some(self.orderflow >= x * b),
            (Rule::RatioAtMost(x), Some(b)) => Some(self.orderflow <= x * b),
            (Rule::Below(x, _), _) => Some(self.orderflow < x),
            _ => None,
        }
    }
}

/// Runs a scenario `repeats` times and keeps each side's best.
pub async fn repeated(name: &str, repeats: usize, scenario: impl AsyncFn(&mut Vec<Row>)) -> Vec<Row> {
    let mut runs = Vec::new();
    for run in 1..=repeats {
        eprintln!("scenario {name} (run {run} of {repeats})");
        let mut rows = Vec::new();
        scenario(&mut rows).await;
        runs.push(rows);
    }
    best_of(runs)
}

/// The best value of each side over repeated runs of one scenario.
fn best_of(runs: Vec<Vec<Row>>) -> Vec<Row> {
    let mut runs = runs.into_iter();
    let mut best = runs.next().unwrap_or_default();
    for run in runs {
        for (kept, row) in best.iter_mut().zip(run) {
            let better = |a: f64, b: f64| if kept.more_is_better { a.max(b) } else { a.min(b) };
            kept.orderflow = better(kept.orderflow, row.orderflow);
            kept.baseline = kept.baseline.zip(row.baseline).map(|(a, b)| better(a, b));
        }
    }
    best
}

/// orderflow ÷ baseline, where there is a baseline.
fn ratio(row: &Row) -> Option<f64> {
    row.baseline.map(|b| row.orderflow / b)
}

/// The Markdown table of `rows`, and the benchmark's total time below it.
pub fn print_table(rows: &[Row], total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | metric | orderflow | baseline | orderflow ÷ baseline | target | met |\n|---|---|---:|---:|---:|---|---|"
    );
    for row in rows {
        let value = |v: f64| if v < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.metric,
            value(row.orderflow),
            row.baseline.map_or_else(|| "-".into(), value),
            ratio(row).map_or_else(|| "-".into(), |r| format!("{r:.2}")),
            row.target(),
            match row.pass() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    let _ = writeln!(out, "\nTotal benchmark time: {:.0} s", total.as_secs_f64());
    out
}
